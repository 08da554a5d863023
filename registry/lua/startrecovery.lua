-- startrecovery records a recovery of an active endpoint, running from the start of its window,
-- with its outbox entry (until it is done) so that a lost task is queued again.
--
-- KEYS[1] recovery   KEYS[2] endpoint   KEYS[3] outbox
-- ARGV[1] recovery id   ARGV[2] endpoint id   ARGV[3] since (ms)   ARGV[4] until (ms)
-- ARGV[5] include ("failed,missing")   ARGV[6] the endpoint's event types   ARGV[7] now (ms)
-- ARGV[8] how long the record is kept (s)   ARGV[9] the recovery's outbox entry
-- Returns 'ok', 'nowebhook' or 'disabled'.
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return 'nowebhook' end
if st ~= 'active' then return 'disabled' end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'webhookId', ARGV[2], 'since', ARGV[3], 'until', ARGV[4],
  'include', ARGV[5], 'types', ARGV[6], 'status', 'running', 'requeued', 0, 'created', 0,
  'cursor', tonumber(ARGV[3]) - 1, 'createdAt', ARGV[7], 'steps', 0)
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[9])
return 'ok'
