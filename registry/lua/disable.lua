-- disable disables an active endpoint by hand and holds its queued and retrying deliveries;
-- webhook.disabled is recorded.
--
-- KEYS[1] endpoint
-- ARGV[1] tag   ARGV[2] endpoint id   ARGV[3] now (ms)   ARGV[4] reason   ARGV[5] retention (s)
-- Returns {1, operational event recorded or ''}, {0} when it was not active, {-1} when unknown.
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1} end
if st ~= 'active' then return {0} end
disable(KEYS[1], ARGV[4], ARGV[3])
redis.call('HDEL', KEYS[1], 'probation')
holdAll(ARGV[1], ARGV[2], ARGV[3], ARGV[5])
local fails = redis.call('HGET', KEYS[1], 'consecutiveFailures') or '0'
return {1, emit(ARGV[1], 'webhook.disabled', ARGV[2], ARGV[3], ARGV[5], '', {'reason', ARGV[4],
  'consecutiveFailures', fails}) or ''}
