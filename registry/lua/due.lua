-- due fires a retry timer: the delivery goes back on its endpoint's queue for its next attempt
-- (same run, its attempts so far kept) and a drain is woken, unless the delivery has moved on
-- since the timer was set (held, queued again, finished, deleted). A delivery whose endpoint
-- is disabled is held (disabling holds every retrying delivery it finds in its index; this
-- catches one the index no longer lists). Either way the timer's outbox entry goes.
--
-- KEYS[1] delivery   KEYS[2] endpoint   KEYS[3] outbox
-- ARGV[1] tag   ARGV[2] delivery id   ARGV[3] endpoint id   ARGV[4] generation
-- ARGV[5] attempts of the run when the timer was set, '' when unknown   ARGV[6] now (ms)
-- ARGV[7] the timer's outbox entry   ARGV[8] retention (s)
-- Returns {'queued', drain to schedule or ''}, {'held'} or {'stale'}.
local tag, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
redis.call('ZREM', KEYS[3], ARGV[7])
local d = redis.call('HMGET', KEYS[1], 'generation', 'status', 'runAttempts', 'webhookId')
if d[1] ~= ARGV[4] or d[2] ~= 'retrying' or d[4] ~= eid or (ARGV[5] ~= '' and d[3] ~= ARGV[5]) then
  return {'stale'}
end
local ep = redis.call('HMGET', KEYS[2], 'status', 'ordering')
local st = ep[1]
if not st then return {'stale'} end
if st ~= 'active' then
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('HSET', KEYS[1], 'nextAttemptAt', '')
  setStatus(tag, eid, did, 'held', now)
  return {'held'}
end
local queued = enqueue(tag, eid, did, tonumber(d[1]), tonumber(d[3] or '0') or 0, now, ep[2] == 'scan', ARGV[8])
flush()
if not queued then return {'queued', ''} end
return {'queued', wake(tag, eid, now) or ''}
