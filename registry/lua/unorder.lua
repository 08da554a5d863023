-- unorder ends an endpoint's ordering by scan: every delivery waiting in a lane goes on the
-- queue at once (in creation order) and the lanes are forgotten. Deliveries in flight finish
-- as they would.
--
-- KEYS[1] endpoint   KEYS[2] waiting index   KEYS[3] pending index (the queue)   KEYS[4] pend hash
-- ARGV[1] tag   ARGV[2] endpoint id   ARGV[3] now (ms)
-- Returns {moved, drain to schedule or ''}.
local tag, eid, now = ARGV[1], ARGV[2], ARGV[3]
local waiting = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #waiting, 2 do
  local did = waiting[i]
  local entry = redis.call('HGET', KEYS[4], did)
  if entry then
    local evid, etype, created, gen, rec, run, lane = parseEntry(entry)
    redis.call('ZADD', KEYS[3], waiting[i + 1], did)
    redis.call('HSET', KEYS[4], did, queueEntry(evid, etype, created, gen, rec, run, lane, ''))
  end
end
redis.call('DEL', KEYS[2])
clearLanes(tag, eid)
local w = ''
if #waiting > 0 then w = wake(tag, eid, now) or '' end
return {#waiting / 2, w}
