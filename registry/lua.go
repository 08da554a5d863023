package registry

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Lua scripts for the delivery state machine. Each runs atomically inside one hash tag (the
// tenant's): the declared KEYS route the script, and the keys it derives from the tag argument
// follow the layout of keys.go, so all of them land in the same cluster slot.
//
// The success path is kept short on purpose: a delivery is queued with 4 commands and its
// first attempt recorded with about 6 (plus a share of its batch's); retention trimming of
// the indexes runs in the sweeper, not here.

// luaPrelude holds the helpers the delivery scripts share.
//
// A delivery waiting for its first attempt (or queued again by a manual retry or a re-enable)
// is "queued": its id is in the endpoint's pending index, which is also the endpoint's queue,
// and its queue entry ("eventId|eventType|createdAtMs|generation|hasRecord") is a field of the
// endpoint's pend hash. A delivery that has never been attempted has no record of its own: the
// entry is all there is, and reads answer from it. The endpoint's drain key holds the number
// of the one drain task that works its queue, with a lease; wake schedules one when none holds it.
var luaPrelude = `
local NS = ''
local LEASE = ` + strconv.FormatInt(DrainLease.Milliseconds(), 10) + `
local function dkey(tag, did) return tag .. ':dlv:' .. did end
local function idx(tag, eid, st) return tag .. ':ep:' .. eid .. ':dlv:' .. st end
local function pkey(tag, eid) return tag .. ':ep:' .. eid .. ':pend' end
local function qkey(tag, eid) return tag .. ':ep:' .. eid .. ':drain' end
-- deliveryId is registry.DeliveryID: a UUIDv5 (SHA-1) of the namespace, event and endpoint.
local function deliveryId(evid, eid)
  local h = redis.sha1hex(NS .. evid .. '/' .. eid)
  local v = tonumber(string.sub(h, 17, 17), 16) % 4 + 8
  return string.sub(h, 1, 8) .. '-' .. string.sub(h, 9, 12) .. '-5' .. string.sub(h, 14, 16) .. '-' ..
    string.format('%x', v) .. string.sub(h, 18, 20) .. '-' .. string.sub(h, 21, 32)
end
local function queueEntry(evid, etype, created, gen, rec)
  return evid .. '|' .. etype .. '|' .. created .. '|' .. gen .. '|' .. rec
end
local function parseEntry(v)
  local evid, etype, created, gen, rec = string.match(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  return evid, etype, created, tonumber(gen), rec
end
-- wake makes sure a drain of the endpoint's queue is scheduled. It returns "eid:n" for the
-- caller to queue (recorded in the outbox until that drain ends), or nil when one holds the lease.
local function wake(tag, eid, now)
  local q = qkey(tag, eid)
  if redis.call('EXISTS', q) == 1 then return nil end
  local n = redis.call('INCR', q .. ':n')
  redis.call('SET', q, n, 'PX', LEASE)
  redis.call('ZADD', tag .. ':outbox', now, 'q:' .. eid .. ':' .. n)
  return eid .. ':' .. n
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
-- requeue puts a delivery that has a record back on its endpoint's queue with a new
-- generation and a fresh attempt budget.
local function requeue(tag, eid, did, now)
  local k = dkey(tag, did)
  local gen = redis.call('HINCRBY', k, 'generation', 1)
  redis.call('HSET', k, 'runAttempts', 0, 'nextAttemptAt', now)
  local cur = redis.call('HMGET', k, 'status', 'createdAt', 'eventId', 'eventType')
  move(tag, eid, did, cur[1], 'pending', cur[2], now)
  redis.call('HSET', pkey(tag, eid), did, queueEntry(cur[3], cur[4], cur[2], gen, '1'))
  return gen
end
local function holdAll(tag, eid, now, retsec)
  local n = 0
  local pk, pidx = pkey(tag, eid), idx(tag, eid, 'pending')
  local queued = redis.call('ZRANGE', pidx, 0, -1, 'WITHSCORES')
  for i = 1, #queued, 2 do
    local did = queued[i]
    local entry = redis.call('HGET', pk, did)
    local k = dkey(tag, did)
    local held = true
    if redis.call('EXISTS', k) == 1 then
      redis.call('HINCRBY', k, 'generation', 1)
      redis.call('HSET', k, 'nextAttemptAt', '', 'status', 'held', 'updatedAt', now)
    elseif entry then
      local evid, etype, created, gen = parseEntry(entry)
      redis.call('HSET', k, 'id', did, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', 'held',
        'attemptCount', 0, 'runAttempts', 0, 'generation', gen + 1, 'createdAt', created, 'updatedAt', now,
        'nextAttemptAt', '')
      redis.call('EXPIRE', k, retsec)
    else
      held = false
    end
    if held then
      redis.call('ZADD', idx(tag, eid, 'held'), queued[i + 1], did)
      n = n + 1
    end
  end
  redis.call('DEL', pidx, pk)
  local ids = redis.call('ZRANGE', idx(tag, eid, 'retrying'), 0, -1)
  for _, did in ipairs(ids) do
    local k = dkey(tag, did)
    if redis.call('EXISTS', k) == 1 then
      redis.call('HINCRBY', k, 'generation', 1)
      redis.call('HSET', k, 'nextAttemptAt', '')
      setStatus(tag, eid, did, 'held', now)
      n = n + 1
    else
      redis.call('ZREM', idx(tag, eid, 'retrying'), did)
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
-- fanOut creates one delivery of the event per endpoint unless it exists: queued (no record)
-- for an active endpoint, held (with a record) for a disabled one. It returns the drains to
-- schedule (see wake) for the endpoints with queued deliveries.
local function fanOut(tag, evid, etype, eids, now, retsec, fresh)
  local out = {}
  for _, eid in ipairs(eids) do
    local st = redis.call('HGET', tag .. ':ep:' .. eid, 'status')
    if st then
      local did = deliveryId(evid, eid)
      local exists, queued = false, false
      if not fresh then
        if redis.call('HEXISTS', pkey(tag, eid), did) == 1 then
          exists, queued = true, true
        elseif redis.call('EXISTS', dkey(tag, did)) == 1 then
          exists = true
        end
      end
      if not exists then
        if st == 'active' then
          redis.call('ZADD', tag .. ':ep:' .. eid .. ':dlv', now, did)
          redis.call('ZADD', idx(tag, eid, 'pending'), now, did)
          redis.call('HSET', pkey(tag, eid), did, queueEntry(evid, etype, now, 0, '0'))
          queued = true
        else
          newDelivery(tag, did, eid, evid, etype, 'held', now, retsec)
        end
      end
      if queued then
        local w = wake(tag, eid, now)
        if w then table.insert(out, w) end
      end
    end
  end
  return out
end
`

func script(body string) *redis.Script { return redis.NewScript(luaPrelude + body) }

// publishScript stores an event once, with its idempotency key and quota count and, when at
// most inlineMax endpoints subscribe, its deliveries in the same step; a larger fan-out is
// recorded in the outbox for a fan-out task.
// KEYS: event, idempotency, usage, outbox, subscribers.
// ARGV: evid, type, nowMs, body, retentionSec, idemTTLSec, quota, usageTTLSec, hasIdem, tag,
// inlineMax, namespace.
// Returns {'replay', evid}, {'quota'}, {'fanout', n} or {'inline', n, drains...}.
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
if n > tonumber(ARGV[11]) then
  redis.call('ZADD', KEYS[4], ARGV[3], 'e:' .. ARGV[1])
  return {'fanout', tostring(n)}
end
NS = ARGV[12]
local out = fanOut(ARGV[10], ARGV[1], ARGV[2], subs, ARGV[3], ARGV[5], true)
table.insert(out, 1, tostring(n))
table.insert(out, 1, 'inline')
return out`)

// retractScript undoes a publish none of whose work could be queued: the event, its
// deliveries, idempotency key and quota count, and the drains it scheduled that have nothing
// else to do. A fan-out (inline '0') is retracted only while its outbox entry is unswept.
// KEYS: event, idempotency, usage, outbox, subscribers. ARGV: evid, hasIdem, tag, namespace,
// inline, drains ("eid:n")...
var retractScript = script(`
local tag = ARGV[3]
if ARGV[5] == '1' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
elseif redis.call('ZREM', KEYS[4], 'e:' .. ARGV[1]) == 0 then
  return 0
end
NS = ARGV[4]
for _, eid in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local did = deliveryId(ARGV[1], eid)
  if redis.call('HDEL', pkey(tag, eid), did) == 1 then
    redis.call('ZREM', idx(tag, eid, 'pending'), did)
    redis.call('ZREM', tag .. ':ep:' .. eid .. ':dlv', did)
  end
  local k = dkey(tag, did)
  local st = redis.call('HGET', k, 'status')
  if st then
    redis.call('ZREM', idx(tag, eid, st), did)
    redis.call('ZREM', tag .. ':ep:' .. eid .. ':dlv', did)
    redis.call('DEL', k)
  end
end
for i = 6, #ARGV do
  local eid, n = string.match(ARGV[i], '^(.*):(%d+)$')
  if eid and redis.call('GET', qkey(tag, eid)) == n and redis.call('ZCARD', idx(tag, eid, 'pending')) == 0 then
    redis.call('DEL', qkey(tag, eid))
    redis.call('ZREM', KEYS[4], 'q:' .. ARGV[i])
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

// testScript creates a webhook.test event and its one delivery (with a record, so the answer
// can show it at once), queued on the endpoint.
// KEYS: endpoint, event. ARGV: tag, evid, did, eid, nowMs, body, retentionSec.
// Returns {'ok', drain or ”}, {'nowebhook'} or {'disabled'}.
var testScript = script(`
local tag, evid, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'nowebhook'} end
if st ~= 'active' then return {'disabled'} end
redis.call('HSET', KEYS[2], 'id', evid, 'type', 'webhook.test', 'createdAt', now, 'body', ARGV[6], 'deliveries', 1)
redis.call('EXPIRE', KEYS[2], ARGV[7])
newDelivery(tag, did, eid, evid, 'webhook.test', 'pending', now, ARGV[7])
redis.call('HSET', pkey(tag, eid), did, queueEntry(evid, 'webhook.test', now, 0, '1'))
return {'ok', wake(tag, eid, now) or ''}`)

// requeueScript queues a delivery again now with a fresh attempt budget (manual retry) and
// keeps it (and its attempts) for another retention period. A delivery still waiting for its
// first attempt is left as it is.
// KEYS: delivery, endpoint, attempts. ARGV: tag, did, eid, nowMs, retentionSec.
// Returns {'ok', drain or ”}, {'nowebhook'}, {'nodelivery'} or {'disabled'}.
var requeueScript = script(`
local tag, did, eid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return {'nowebhook'} end
if redis.call('HGET', KEYS[1], 'webhookId') ~= eid then
  if redis.call('HEXISTS', pkey(tag, eid), did) == 0 then return {'nodelivery'} end
  if st ~= 'active' then return {'disabled'} end
  return {'ok', ''}
end
if st ~= 'active' then return {'disabled'} end
requeue(tag, eid, did, now)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {'ok', wake(tag, eid, now) or ''}`)

// enableScript re-enables an endpoint: resets the failure streak and queues every held
// delivery again with a new generation.
// KEYS: endpoint. ARGV: tag, eid, nowMs. Returns {count, drain or ”}; false when unknown.
var enableScript = script(`
local tag, eid, now = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'status', 'active', 'consecutiveFailures', 0, 'updatedAt', now)
redis.call('HDEL', KEYS[1], 'disabledReason', 'disabledAt', 'streakStart')
local n = 0
local ids = redis.call('ZRANGE', idx(tag, eid, 'held'), 0, -1)
for _, did in ipairs(ids) do
  if redis.call('EXISTS', dkey(tag, did)) == 1 then
    requeue(tag, eid, did, now)
    n = n + 1
  else
    redis.call('ZREM', idx(tag, eid, 'held'), did)
  end
end
local w = ''
if n > 0 then w = wake(tag, eid, now) or '' end
return {n, w}`)

// disableScript disables an active endpoint by hand and holds its queued deliveries.
// KEYS: endpoint. ARGV: tag, eid, nowMs, reason, retentionSec.
var disableScript = script(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if st ~= 'active' then return 0 end
disable(KEYS[1], ARGV[4], ARGV[3])
holdAll(ARGV[1], ARGV[2], ARGV[3], ARGV[5])
return 1`)

// holdScript holds one delivery whose endpoint is disabled, unless it was re-enabled meanwhile.
// KEYS: delivery, endpoint. ARGV: tag, did, eid, generation, nowMs.
var holdScript = script(`
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return 'deleted' end
if st == 'active' then return 'active' end
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[4] then return 'stale' end
local cur = redis.call('HGET', KEYS[1], 'status')
if cur == 'retrying' then
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
  redis.call('HSET', KEYS[1], 'nextAttemptAt', '')
  setStatus(ARGV[1], ARGV[3], ARGV[2], 'held', ARGV[5])
end
return 'held'`)

// luaStreak is the endpoint's failure streak, shared by the scripts that record attempts:
// streak(outcome, atMs) counts one attempt's outcome, disabling the endpoint at the threshold
// (or at once for 'gone'); saveStreak writes the streak back.
const luaStreak = `
local ep = redis.call('HMGET', EK, 'status', 'consecutiveFailures', 'streakStart')
local est = ep[1]
local fails = tonumber(ep[2] or '0') or 0
local streakStart = tonumber(ep[3])
local streakChanged = false
local disabledNow = 0
local function streak(outcome, at)
  if not est then return end
  if outcome == 'success' then
    if fails ~= 0 then fails, streakStart, streakChanged = 0, nil, true end
  elseif outcome == 'failure' or outcome == 'gone' then
    fails = fails + 1
    streakChanged = true
    if fails == 1 or not streakStart then streakStart = tonumber(at) end
    if est == 'active' then
      local reason = nil
      if outcome == 'gone' then reason = 'gone'
      elseif fails >= THRESHOLD and tonumber(at) - streakStart >= WINDOW then reason = 'consecutive_failures' end
      if reason then
        disable(EK, reason, at)
        disabledNow, est = 1, 'disabled'
      end
    end
  end
end
local function saveStreak()
  if not streakChanged then return end
  if fails == 0 then
    redis.call('HSET', EK, 'consecutiveFailures', 0)
    redis.call('HDEL', EK, 'streakStart')
  else
    redis.call('HSET', EK, 'consecutiveFailures', fails, 'streakStart', streakStart)
  end
end
local function logAttempt(ak, att, retsec)
  local len = redis.call('RPUSH', ak, att)
  if len == 1 then redis.call('EXPIRE', ak, retsec) elseif len > 100 then redis.call('LTRIM', ak, -100, -1) end
end
`

// recordScript records one attempt of a retry run and its consequences atomically: the
// attempt log, the endpoint's failure streak (and auto-disable), and the delivery's next status.
// KEYS: delivery, endpoint, attempts.
// ARGV: tag, did, eid, generation, attemptJSON, outcome, nowMs, threshold, windowMs,
// maxAttempts, nextAttemptAtMs, retentionSec.
var recordScript = script(`
local EK, THRESHOLD, WINDOW = KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[9])
` + luaStreak + `
local tag, did, eid, gen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[7]
local outcome = ARGV[6]
logAttempt(KEYS[3], ARGV[5], ARGV[12])
local d = redis.call('HMGET', KEYS[1], 'generation', 'status', 'createdAt', 'attemptCount', 'runAttempts')
streak(outcome, now)
saveStreak()
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
if disabledNow == 1 then holdAll(tag, eid, now, ARGV[12]) end
return {status, disabledNow}`)

// takeScript hands a drain the next deliveries of its endpoint's queue, skipping those it has
// in flight, with each event's body and the endpoint. The drain must hold the lease (a lapsed
// lease is taken over); with endIfEmpty it ends there when nothing is queued.
// KEYS: drain, pending index, pend, endpoint, outbox.
// ARGV: tag, n, limit, refresh ('1' renews the lease), endIfEmpty, eid, skip...
// Returns {'lost'}, {'ended'} or {'ok', endpoint fields (flat), then did, entry, body per delivery}.
var takeScript = script(`
local tag, n = ARGV[1], ARGV[2]
local v = redis.call('GET', KEYS[1])
if v ~= n then
  if v then return {'lost'} end
  redis.call('SET', KEYS[1], n, 'PX', LEASE)
elseif ARGV[4] == '1' then
  redis.call('PEXPIRE', KEYS[1], LEASE)
end
local limit = tonumber(ARGV[3])
if limit == 0 then return {'ok', {}} end
local skip = {}
for i = 7, #ARGV do skip[ARGV[i]] = true end
local ids = redis.call('ZRANGE', KEYS[2], 0, limit + #ARGV - 7)
local take = {}
for _, did in ipairs(ids) do
  if not skip[did] and #take < limit then table.insert(take, did) end
end
if #take == 0 then
  if ARGV[5] == '1' and #ids == 0 then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[5], 'q:' .. ARGV[6] .. ':' .. n)
    return {'ended'}
  end
  return {'ok', {}}
end
local entries = redis.call('HMGET', KEYS[3], unpack(take))
local out = {'ok', redis.call('HGETALL', KEYS[4])}
for i, did in ipairs(take) do
  local e = entries[i]
  if e then
    local evid = parseEntry(e)
    table.insert(out, did)
    table.insert(out, e)
    table.insert(out, redis.call('HGET', tag .. ':evt:' .. evid, 'body') or '')
  else
    redis.call('ZREM', KEYS[2], did) -- an index entry without a queue entry: nothing to send
  end
end
return out`)

// endDrainScript ends a drain whose queue is empty ('end': 'ended', or 'more' when something
// was queued meanwhile) or hands its lease to a successor ('handoff': the successor's number,
// recorded in the outbox until queued). 'lost' when the drain no longer holds the lease.
// KEYS: drain, pending index, outbox. ARGV: n, eid, mode, nowMs.
var endDrainScript = script(`
local n, eid = ARGV[1], ARGV[2]
if redis.call('GET', KEYS[1]) ~= n then
  redis.call('ZREM', KEYS[3], 'q:' .. eid .. ':' .. n)
  return 'lost'
end
if ARGV[3] == 'end' then
  if redis.call('ZCARD', KEYS[2]) > 0 then return 'more' end
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], 'q:' .. eid .. ':' .. n)
  return 'ended'
end
local m = redis.call('INCR', KEYS[1] .. ':n')
redis.call('SET', KEYS[1], m, 'PX', LEASE)
redis.call('ZREM', KEYS[3], 'q:' .. eid .. ':' .. n)
redis.call('ZADD', KEYS[3], ARGV[4], 'q:' .. eid .. ':' .. m)
return tostring(m)`)

// finishScript records a batch of a drain's attempts atomically, as recordScript does one:
// the failure streak, and for each delivery still queued as the drain took it, its record
// (created on the first attempt, the attempt kept in it), index and next status. A failed
// first attempt that has retries left is recorded in the outbox for its retry task. An
// attempt of a delivery superseded meanwhile (held, queued again) is only logged.
// KEYS: endpoint, pend, pending index, outbox.
// ARGV: tag, eid, nowMs, threshold, windowMs, maxAttempts, retentionSec, then per attempt:
// did, entry, outcome ('expired': the event is gone, nothing was sent), attemptJSON, atMs,
// nextAttemptAtMs. Returns {disabledNow, status...}.
var finishScript = script(`
local EK, THRESHOLD, WINDOW = KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5])
` + luaStreak + `
local tag, eid, now, retsec = ARGV[1], ARGV[2], ARGV[3], ARGV[7]
-- numbered gives an attempt (JSON, "number" first) its number in the delivery's log.
local function numbered(att, c) return (string.gsub(att, '^{"number":%d+', '{"number":' .. c, 1)) end
local out = {}
for i = 8, #ARGV, 6 do
  local did, entry, outcome, att, at, nextAt = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  streak(outcome, at)
  local k = dkey(tag, did)
  local status = 'stale'
  if redis.call('HGET', KEYS[2], did) == entry then
    redis.call('HDEL', KEYS[2], did)
    local evid, etype, created, gen, rec = parseEntry(entry)
    local next = ''
    if outcome == 'success' then status = 'succeeded'
    elseif outcome == 'expired' or tonumber(ARGV[6]) <= 1 then status = 'failed'
    else status = 'retrying'; next = nextAt end
    if status ~= 'succeeded' and est and est ~= 'active' then
      status, next, gen = 'held', '', gen + 1
    end
    local n = 1
    if att == '' then n = 0 end
    if rec == '1' and redis.call('EXISTS', k) == 1 then
      if n == 1 then
        local c = redis.call('HINCRBY', k, 'attemptCount', 1)
        logAttempt(k .. ':att', numbered(att, c), retsec)
      end
      redis.call('HSET', k, 'runAttempts', n, 'status', status, 'nextAttemptAt', next, 'updatedAt', now, 'generation', gen)
    else
      redis.call('HSET', k, 'id', did, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', status,
        'attemptCount', n, 'runAttempts', n, 'generation', gen, 'createdAt', created, 'updatedAt', now,
        'nextAttemptAt', next, 'first', att)
      redis.call('EXPIRE', k, retsec)
    end
    redis.call('ZREM', KEYS[3], did)
    redis.call('ZADD', idx(tag, eid, status), created, did)
    if status == 'retrying' then redis.call('ZADD', KEYS[4], nextAt, 'd:' .. did .. ':' .. eid .. ':' .. gen) end
  elseif att ~= '' and redis.call('EXISTS', k) == 1 then
    local c = redis.call('HINCRBY', k, 'attemptCount', 1)
    logAttempt(k .. ':att', numbered(att, c), retsec)
  end
  table.insert(out, status)
end
saveStreak()
if disabledNow == 1 then holdAll(tag, eid, now, retsec) end
table.insert(out, 1, disabledNow)
return out`)

// trimScript drops index entries older than the retention period; the records they named
// have expired. The pending index is left alone: a queued delivery waits however long its
// endpoint's queue takes. KEYS: the endpoint's delivery indexes. ARGV: cutoffMs.
var trimScript = redis.NewScript(`
local n = 0
for _, k in ipairs(KEYS) do n = n + redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[1]) end
return n`)
