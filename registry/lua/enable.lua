-- enable re-enables an endpoint: resets the failure streak and queues every held delivery
-- again in a new run, in creation order (so an ordered endpoint's lanes form as they were).
-- An endpoint that was disabled starts on probation (one attempt at a time until a success, a
-- failure disables it again) and webhook.enabled is recorded.
--
-- KEYS[1] endpoint
-- ARGV[1] tag   ARGV[2] endpoint id   ARGV[3] now (ms)   ARGV[4] retention (s)
-- Returns {requeued, drain to schedule or '', operational event recorded or ''}; false when the
-- endpoint is unknown.
local tag, eid, now = ARGV[1], ARGV[2], ARGV[3]
local was = redis.call('HGET', KEYS[1], 'status')
if not was then return false end
redis.call('HSET', KEYS[1], 'status', 'active', 'consecutiveFailures', 0, 'updatedAt', now)
redis.call('HDEL', KEYS[1], 'disabledReason', 'disabledAt', 'streakStart', 'degraded')
local ops = ''
if was ~= 'active' then
  redis.call('HSET', KEYS[1], 'probation', '1')
  ops = emit(tag, 'webhook.enabled', eid, now, ARGV[4], '', {'reason', 'manual', 'consecutiveFailures', 0}) or ''
end
local ordered = redis.call('HGET', KEYS[1], 'ordering') == 'scan'
local n = 0
for _, did in ipairs(redis.call('ZRANGE', statusKey(tag, eid, 'held'), 0, -1)) do
  if redis.call('EXISTS', deliveryKey(tag, did)) == 1 then
    requeue(tag, eid, did, now, ordered, ARGV[4])
    n = n + 1
  else
    redis.call('ZREM', statusKey(tag, eid, 'held'), did)
  end
end
flush()
local w = ''
if n > 0 then w = wake(tag, eid, now) or '' end
return {n, w, ops}
