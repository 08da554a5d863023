-- trim drops index entries older than the retention period; the records they named have
-- expired. The pending index is left alone: a queued delivery waits however long its
-- endpoint's queue takes.
--
-- KEYS the endpoint's delivery indexes   ARGV[1] cutoff (ms)
-- Returns how many entries it dropped.
local n = 0
for _, k in ipairs(KEYS) do n = n + redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[1]) end
return n
