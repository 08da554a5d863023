-- enddrain ends a drain whose queue is empty ('end': 'ended', or 'more' when something was
-- queued meanwhile) or hands its lease to a successor ('handoff': the successor's number,
-- recorded in the outbox until it ends). 'lost' when the drain no longer holds the lease.
--
-- KEYS[1] drain lease   KEYS[2] drain counter   KEYS[3] pending index (the queue)   KEYS[4] outbox
-- ARGV[1] drain number   ARGV[2] endpoint id   ARGV[3] 'end' or 'handoff'   ARGV[4] now (ms)
local n, eid = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[1]) ~= n then
  redis.call('ZREM', KEYS[4], drainEntry(eid, n))
  return 'lost'
end
if ARGV[3] == 'end' then
  if redis.call('ZCARD', KEYS[3]) > 0 then return 'more' end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], drainEntry(eid, n))
  return 'ended'
end
local m = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], m, 'PX', LEASE)
redis.call('ZREM', KEYS[4], drainEntry(eid, n))
redis.call('ZADD', KEYS[4], ARGV[4], drainEntry(eid, m))
return tostring(m)
