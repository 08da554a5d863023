-- requeue queues a delivery again now with a fresh attempt budget (manual retry) and keeps it
-- (and its attempts) for another retention period. A delivery still waiting for its first
-- attempt is left as it is; one kept without a record (succeeded at its first attempt, see
-- keepSuccess) gets its record back first. A manual retry is not ordered: it is queued at
-- once, whatever its scan's lane holds.
--
-- KEYS[1] delivery   KEYS[2] endpoint   KEYS[3] attempts
-- ARGV[1] tag   ARGV[2] delivery id   ARGV[3] endpoint id   ARGV[4] now (ms)   ARGV[5] retention (s)
-- Returns {'ok', drain to schedule or ''}, {'nowebhook'}, {'nodelivery'} or {'disabled'}.
local tag, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return {'nowebhook'} end
unkeep(tag, eid, did, ARGV[5])
if redis.call('HGET', KEYS[1], 'webhookId') ~= eid then
  if redis.call('HEXISTS', queueKey(tag, eid), did) == 0 then return {'nodelivery'} end
  if st ~= 'active' then return {'disabled'} end
  return {'ok', ''}
end
if st ~= 'active' then return {'disabled'} end
requeue(tag, eid, did, now, false, ARGV[5])
flush()
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {'ok', wake(tag, eid, now) or ''}
