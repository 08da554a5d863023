-- test creates a webhook.test event and its one delivery (with a record, so the answer can
-- show it at once), queued on the endpoint.
--
-- KEYS[1] endpoint   KEYS[2] event
-- ARGV[1] tag   ARGV[2] event id   ARGV[3] delivery id   ARGV[4] endpoint id   ARGV[5] now (ms)
-- ARGV[6] the event's record (eventrecord.go)   ARGV[7] retention (s)
-- Returns {'ok', drain to schedule or ''}, {'nowebhook'} or {'disabled'}.
local tag, evid, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'nowebhook'} end
if st ~= 'active' then return {'disabled'} end
storeEvent(tag, evid, now, ARGV[6], ARGV[7])
newDelivery(tag, did, eid, evid, 'webhook.test', 'pending', now, ARGV[7], '')
redis.call('HSET', queueKey(tag, eid), did, queueEntry(evid, 'webhook.test', now, 0, '1', 0, '', ''))
local w = wake(tag, eid, now) or ''
flush()
return {'ok', w}
