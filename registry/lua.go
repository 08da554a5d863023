package registry

import "github.com/redis/go-redis/v9"

// Lua scripts for the delivery state machine. Each runs atomically inside one hash tag (the
// tenant's): the declared KEYS route the script, and the keys it derives from the tag argument
// follow the layout of keys.go, so all of them land in the same cluster slot.
//
// The success path is kept short on purpose: a delivery is created with 4 commands and
// finished with about 8; retention trimming of the indexes runs in the sweeper, not here.

// luaPrelude holds the helpers the delivery scripts share.
const luaPrelude = `
local NS = ''
local function dkey(tag, did) return tag .. ':dlv:' .. did end
local function idx(tag, eid, st) return tag .. ':ep:' .. eid .. ':dlv:' .. st end
-- deliveryId is registry.DeliveryID: a UUIDv5 (SHA-1) of the namespace, event and endpoint.
local function deliveryId(evid, eid)
  local h = redis.sha1hex(NS .. evid .. '/' .. eid)
  local v = tonumber(string.sub(h, 17, 17), 16) % 4 + 8
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16) .. '-' ..
    string.format('%x', v) .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end
-- move re-indexes a delivery whose status and createdAt the caller already read.
local function move(tag, eid, did, old, new, score, now)
  redis.call('HSET', dkey(tag, did), 'status', new, 'updatedAt', now)
  if old == new then return end
  if old then redis.call('ZREM', idx(tag, eid, old), did) end
  redis.call('ZADD', idx(tag, eid, new), score, did)
end
local function setStatus(tag, eid, did, new, now)
  local cur = redis.call('HMGET', dkey(tag, did), 'status', 'createdAt')
  move(tag, eid, did, cur[1], new, cur[2], now)
end
local function holdAll(tag, eid, now)
  local n = 0
  for _, st in ipairs({'pending', 'retrying'}) do
    local ids = redis.call('ZRANGE', idx(tag, eid, st), 0, -1)
    for _, did in ipairs(ids) do
      local k = dkey(tag, did)
      if redis.call('EXISTS', k) == 1 then
        redis.call('HINCRBY', k, 'generation', 1)
        redis.call('HSET', k, 'nextAttemptAt', '')
        setStatus(tag, eid, did, 'held', now)
        n = n + 1
      else
        redis.call('ZREM', idx(tag, eid, st), did)
      end
    end
  end
  return n
end
local function disable(ek, reason, now)
  redis.call('HSET', ek, 'status', 'disabled', 'disabledReason', reason, 'disabledAt', now, 'updatedAt', now)
end
local function newDelivery(tag, did, eid, evid, etype, status, now, retsec)
  local k = dkey(tag, did)
  local next = ''
  if status == 'pending' then next = now end
  redis.call('HSET', k, 'id', did, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', status,
    'attemptCount', 0, 'runAttempts', 0, 'generation', 0, 'createdAt', now, 'updatedAt', now, 'nextAttemptAt', next)
  redis.call('EXPIRE', k, retsec)
  redis.call('ZADD', tag .. ':ep:' .. eid .. ':dlv', now, did)
  redis.call('ZADD', idx(tag, eid, status), now, did)
end
-- fanOut creates one delivery of the event per endpoint (held when the endpoint is disabled)
-- unless it exists, and returns "did:eid:generation" for each delivery to queue.
local function fanOut(tag, evid, etype, eids, now, retsec, fresh)
  local out = {}
  for _, eid in ipairs(eids) do
    local st = redis.call('HGET', tag .. ':ep:' .. eid, 'status')
    if st then
      local did = deliveryId(evid, eid)
      local cur = nil
      if not fresh then cur = redis.call('HMGET', dkey(tag, did), 'status', 'generation') end
      if not cur or not cur[1] then
        local status = 'pending'
        if st ~= 'active' then status = 'held' end
        newDelivery(tag, did, eid, evid, etype, status, now, retsec)
        if status == 'pending' then table.insert(out, did .. ':' .. eid .. ':0') end
      elseif cur[1] == 'pending' then
        table.insert(out, did .. ':' .. eid .. ':' .. cur[2])
      end
    end
  end
  return out
end
`

func script(body string) *redis.Script { return redis.NewScript(luaPrelude + body) }

// publishScript stores an event once, with its idempotency key, quota count and outbox entry,
// and, when at most inlineMax endpoints subscribe, creates their deliveries in the same step.
// KEYS: event, idempotency, usage, outbox, subscribers.
// ARGV: evid, type, nowMs, body, retentionSec, idemTTLSec, quota, usageTTLSec, hasIdem, tag,
// inlineMax, namespace.
// Returns {'replay', evid}, {'quota'}, {'fanout', n} or {'inline', n, queued...}.
var publishScript = script(`
if ARGV[9] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'replay', prev} end
end
local q = tonumber(ARGV[7])
local used = redis.call('INCR', KEYS[3])
if used == 1 then redis.call('EXPIRE', KEYS[3], ARGV[8]) end
if q > 0 and used > q then
  redis.call('DECR', KEYS[3])
  return {'quota'}
end
local subs = redis.call('SMEMBERS', KEYS[5])
local n = #subs
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'type', ARGV[2], 'createdAt', ARGV[3], 'body', ARGV[4], 'deliveries', n)
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ARGV[9] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[6]) end
redis.call('ZADD', KEYS[4], ARGV[3], 'e:' .. ARGV[1])
if n > tonumber(ARGV[11]) then return {'fanout', tostring(n)} end
NS = ARGV[12]
local out = fanOut(ARGV[10], ARGV[1], ARGV[2], subs, ARGV[3], ARGV[5], true)
table.insert(out, 1, tostring(n))
table.insert(out, 1, 'inline')
return out`)

// retractScript undoes a publish none of whose work could be queued, unless a sweep already
// took it: the event, its inline deliveries, idempotency key and quota count.
// KEYS: event, idempotency, usage, outbox, subscribers. ARGV: evid, hasIdem, tag, namespace.
var retractScript = script(`
if redis.call('ZREM', KEYS[4], 'e:' .. ARGV[1]) == 0 then return 0 end
NS = ARGV[4]
for _, eid in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local did = deliveryId(ARGV[1], eid)
  local k = dkey(ARGV[3], did)
  local st = redis.call('HGET', k, 'status')
  if st then
    redis.call('ZREM', idx(ARGV[3], eid, st), did)
    redis.call('ZREM', ARGV[3] .. ':ep:' .. eid .. ':dlv', did)
    redis.call('DEL', k)
  end
end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('DECR', KEYS[3])
return 1`)

// fanoutScript creates the deliveries of a stored event (see fanOut) for the given endpoints,
// or for every subscriber when none are given; false when the event is gone.
// KEYS: event, subscribers. ARGV: tag, evid, type, nowMs, retentionSec, namespace, eids...
var fanoutScript = script(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
NS = ARGV[6]
local eids = {}
for i = 7, #ARGV do table.insert(eids, ARGV[i]) end
if #eids == 0 then eids = redis.call('SMEMBERS', KEYS[2]) end
return fanOut(ARGV[1], ARGV[2], ARGV[3], eids, ARGV[4], ARGV[5], false)`)

// testScript creates a webhook.test event and its one delivery, queued through the outbox.
// KEYS: endpoint, event, outbox. ARGV: tag, evid, did, eid, nowMs, body, retentionSec.
var testScript = script(`
local tag, evid, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'nowebhook' end
if st ~= 'active' then return 'disabled' end
redis.call('HSET', KEYS[2], 'id', evid, 'type', 'webhook.test', 'createdAt', now, 'body', ARGV[6], 'deliveries', 1)
redis.call('EXPIRE', KEYS[2], ARGV[7])
newDelivery(tag, did, eid, evid, 'webhook.test', 'pending', now, ARGV[7])
redis.call('ZADD', KEYS[3], now, 'd:' .. did .. ':' .. eid .. ':0')
return 'ok'`)

// requeueScript queues a delivery again now with a fresh attempt budget (manual retry) and
// keeps it (and its attempts) for another retention period.
// KEYS: delivery, endpoint, outbox, attempts. ARGV: tag, did, eid, nowMs, retentionSec.
var requeueScript = script(`
local tag, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return {'nowebhook'} end
if redis.call('HGET', KEYS[1], 'webhookId') ~= eid then return {'nodelivery'} end
if st ~= 'active' then return {'disabled'} end
local gen = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'runAttempts', 0, 'nextAttemptAt', now)
setStatus(tag, eid, did, 'pending', now)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[5])
redis.call('ZADD', KEYS[3], now, 'd:' .. did .. ':' .. eid .. ':' .. gen)
return {'ok', tostring(gen)}`)

// enableScript re-enables an endpoint: resets the failure streak and moves every held delivery
// back to pending with a new generation, each recorded in the outbox until queued.
// KEYS: endpoint, outbox. ARGV: tag, eid, nowMs.
var enableScript = script(`
local tag, eid, now = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'status', 'active', 'consecutiveFailures', 0, 'updatedAt', now)
redis.call('HDEL', KEYS[1], 'disabledReason', 'disabledAt', 'streakStart')
local out = {}
local ids = redis.call('ZRANGE', idx(tag, eid, 'held'), 0, -1)
for _, did in ipairs(ids) do
  local k = dkey(tag, did)
  if redis.call('EXISTS', k) == 1 then
    local gen = redis.call('HINCRBY', k, 'generation', 1)
    redis.call('HSET', k, 'runAttempts', 0, 'nextAttemptAt', now)
    setStatus(tag, eid, did, 'pending', now)
    local m = did .. ':' .. eid .. ':' .. gen
    redis.call('ZADD', KEYS[2], now, 'd:' .. m)
    table.insert(out, m)
  else
    redis.call('ZREM', idx(tag, eid, 'held'), did)
  end
end
return out`)

// disableScript disables an active endpoint by hand and holds its queued deliveries.
// KEYS: endpoint. ARGV: tag, eid, nowMs, reason.
var disableScript = script(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st ~= 'active' then return 0 end
disable(KEYS[1], ARGV[4], ARGV[3])
holdAll(ARGV[1], ARGV[2], ARGV[3])
return 1`)

// holdScript holds one delivery whose endpoint is disabled, unless it was re-enabled meanwhile.
// KEYS: delivery, endpoint. ARGV: tag, did, eid, generation, nowMs.
var holdScript = script(`
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return 'deleted' end
if st == 'active' then return 'active' end
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[4] then return 'stale' end
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == 'pending' or cur == 'retrying' then
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('HSET', KEYS[1], 'nextAttemptAt', '')
  setStatus(ARGV[1], ARGV[3], ARGV[2], 'held', ARGV[5])
end
return 'held'`)

// recordScript records one attempt and its consequences atomically: the attempt log, the
// endpoint's failure streak (and auto-disable), and the delivery's next status.
// KEYS: delivery, endpoint, attempts.
// ARGV: tag, did, eid, generation, attemptJSON, outcome, nowMs, threshold, windowMs,
// maxAttempts, nextAttemptAtMs, retentionSec.
var recordScript = script(`
local tag, did, eid, gen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[7]
local outcome = ARGV[6]
local len = redis.call('RPUSH', KEYS[3], ARGV[5])
if len == 1 then redis.call('EXPIRE', KEYS[3], ARGV[12]) elseif len > 100 then redis.call('LTRIM', KEYS[3], -100, -1) end
local d = redis.call('HMGET', KEYS[1], 'generation', 'status', 'createdAt', 'attemptCount', 'runAttempts')
local disabledNow = 0
local ep = redis.call('HMGET', KEYS[2], 'status', 'consecutiveFailures', 'streakStart')
local est = ep[1]
if est then
  if outcome == 'success' then
    if ep[2] and ep[2] ~= '0' then
      redis.call('HSET', KEYS[2], 'consecutiveFailures', 0)
      redis.call('HDEL', KEYS[2], 'streakStart')
    end
  elseif outcome == 'failure' or outcome == 'gone' then
    local n = redis.call('HINCRBY', KEYS[2], 'consecutiveFailures', 1)
    local start = tonumber(ep[3])
    if n == 1 or not start then
      start = tonumber(now)
      redis.call('HSET', KEYS[2], 'streakStart', now)
    end
    if est == 'active' then
      if outcome == 'gone' then
        disable(KEYS[2], 'gone', now)
        disabledNow = 1
      elseif n >= tonumber(ARGV[8]) and tonumber(now) - start >= tonumber(ARGV[9]) then
        disable(KEYS[2], 'consecutive_failures', now)
        disabledNow = 1
      end
      if disabledNow == 1 then est = 'disabled' end
    end
  end
end
local status = 'stale'
if d[1] then
  local current = d[1] == gen
  local run = tonumber(d[5] or 0)
  if current then run = run + 1 end
  local fields = {'attemptCount', tonumber(d[4] or 0) + 1, 'runAttempts', run}
  if current then
    local cur = d[2]
    status = cur
    if cur == 'pending' or cur == 'retrying' then
      local next = ''
      if outcome == 'success' then status = 'succeeded'
      elseif run >= tonumber(ARGV[10]) then status = 'failed'
      else status = 'retrying'; next = ARGV[11] end
      -- A disabled endpoint holds what it has not received, even when this was the run's last
      -- attempt: re-enabling it delivers it.
      if status ~= 'succeeded' and est and est ~= 'active' then
        redis.call('HINCRBY', KEYS[1], 'generation', 1)
        status = 'held'
        next = ''
      end
      for _, v in ipairs({'nextAttemptAt', next, 'status', status, 'updatedAt', now}) do table.insert(fields, v) end
      if cur ~= status then
        redis.call('ZREM', idx(tag, eid, cur), did)
        redis.call('ZADD', idx(tag, eid, status), d[3], did)
      end
    end
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
if disabledNow == 1 then holdAll(tag, eid, now) end
return {status, disabledNow}`)

// trimScript drops index entries older than the retention period; the records they named
// have expired. KEYS: the endpoint's delivery indexes. ARGV: cutoffMs.
var trimScript = redis.NewScript(`
local n = 0
for _, k in ipairs(KEYS) do n = n + redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[1]) end
return n`)
