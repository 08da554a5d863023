-- finish records a batch of attempts a drain made (a retry is a batch of one) and applies
-- what follows, atomically: the endpoint's failure streak and auto-disable, and for each
-- delivery still queued as the drain took it, its record (created on its first attempt, which
-- is kept in it; a first attempt that succeeded is kept in its minute's hash instead, see
-- keepSuccess), its index and the status the policy decided. A retrying delivery gets its
-- retry timer in the outbox. A delivery superseded meanwhile (held, queued again) only gets
-- the attempt in its log. A delivery that succeeded or failed for good at the head of its
-- scan's lane hands the lane to the next delivery waiting in it, which goes on the queue.
--
-- The endpoint's health (health.lua) follows from the same outcomes; the operational events
-- the batch causes (webhook.degraded, webhook.disabled, delivery.exhausted) are recorded for
-- publishing (emit).
--
-- KEYS[1] endpoint   KEYS[2] pend hash   KEYS[3] pending index (the queue)   KEYS[4] outbox
-- ARGV[1] tag   ARGV[2] endpoint id   ARGV[3] now (ms)   ARGV[4] disable threshold
-- ARGV[5] disable window (ms)   ARGV[6] retention (s)   ARGV[7] most attempts in flight
-- ARGV[8] how long hourly stats are kept (s)
-- then 12 per attempt: delivery id, queue entry as taken, outcome (success, failure, gone,
-- throttled, expired), status decided (succeeded, retrying, failed), reason to disable the
-- endpoint at once or '', attempt JSON ('' when nothing was sent), attempt end (ms),
-- next attempt (ms), '1' for a 429 or 503 answer, duration (ms), and the field and value that
-- keep the delivery if its first attempt succeeded (kept.go; '' otherwise).
-- Returns {disabled reason or '', id of the delivery whose attempt disabled it or '',
-- effective concurrency, number of operational events recorded, their ids..., status...}; a
-- status is the one decided, 'held' (the endpoint is disabled) or 'stale'.

-- logAttempt keeps an attempt after a delivery's first (attempt.go: its number first) with its
-- number.
local function logAttempt(tag, did, att, retsec)
  local c = redis.call('HINCRBY', deliveryKey(tag, did), 'attemptCount', 1)
  local ak = attemptsKey(tag, did)
  local len = redis.call('RPUSH', ak, (string.gsub(att, '^%d+', tostring(c), 1)))
  if len == 1 then redis.call('EXPIRE', ak, retsec) elseif len > 100 then redis.call('LTRIM', ak, -100, -1) end
end

-- promote hands a finished lane head's lane to the next delivery still waiting in it, or ends
-- the lane when none is.
local function promote(tag, eid, did, lane)
  local lk = lanesKey(tag, eid)
  if redis.call('HGET', lk, lane) ~= did then return end
  local list, widx = laneKey(tag, eid, lane), statusKey(tag, eid, WAITING)
  while true do
    local nxt = redis.call('LPOP', list)
    if not nxt then
      redis.call('HDEL', lk, lane)
      return
    end
    local score = redis.call('ZSCORE', widx, nxt)
    local entry = redis.call('HGET', KEYS[2], nxt)
    if score and entry then
      local evid, etype, created, gen, rec, run = parseEntry(entry)
      redis.call('ZREM', widx, nxt)
      redis.call('HSET', lk, lane, nxt)
      redis.call('ZADD', KEYS[3], score, nxt)
      redis.call('HSET', KEYS[2], nxt, queueEntry(evid, etype, created, gen, rec, run, lane, ''))
      return
    end
  end
end

-- PER is the arguments per attempt, from ARGV[9].
local PER = 12

-- unqueue takes the batch's deliveries that are still queued as the drain took them off the
-- queue, in one step; it returns them as a set. One held or queued again meanwhile has another
-- entry, or none.
local function unqueue()
  local dids, n = {}, 0
  for i = 9, #ARGV, PER do
    n = n + 1
    dids[n] = ARGV[i]
  end
  if n == 0 then return {} end
  local cur, current, live = redis.call('HMGET', KEYS[2], unpack(dids)), {}, {}
  for j, did in ipairs(dids) do
    if cur[j] == ARGV[9 + PER * (j - 1) + 1] then
      current[did] = true
      table.insert(live, did)
    end
  end
  if #live > 0 then
    redis.call('HDEL', KEYS[2], unpack(live))
    redis.call('ZREM', KEYS[3], unpack(live))
  end
  return current
end

-- record writes a queued delivery's new state, dated by the attempt's end; it returns the
-- status it got. kept is the field and value that keep it if its first attempt succeeded.
-- A probation failure (keep) costs the delivery nothing: its run's attempts stay as they were.
local function record(tag, eid, did, entry, s, status, att, nextAt, at, retsec, keep, kept)
  local evid, etype, created, gen, rec, run, lane = parseEntry(entry)
  if att ~= '' and not keep then run = run + 1 end
  if status ~= 'succeeded' and s.status ~= 'active' then status, gen = 'held', gen + 1 end
  if status ~= 'retrying' then nextAt = '' end
  if rec == '1' and redis.call('EXISTS', deliveryKey(tag, did)) == 1 then
    if att ~= '' then logAttempt(tag, did, att, retsec) end
    redis.call('HSET', deliveryKey(tag, did), 'runAttempts', run, 'status', status, 'nextAttemptAt', nextAt,
      'updatedAt', at, 'generation', gen)
  elseif status == 'succeeded' and att ~= '' and run == 1 and gen == 0 and kept[1] ~= '' then
    keepSuccess(tag, created, kept[1], kept[2], at, retsec)
  else
    local k, n = deliveryKey(tag, did), 0
    if att ~= '' then n = 1 end
    redis.call('HSET', k, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', status,
      'attemptCount', n, 'runAttempts', run, 'generation', gen, 'createdAt', created, 'updatedAt', at,
      'nextAttemptAt', nextAt, 'first', att)
    if lane ~= '' then redis.call('HSET', k, 'lane', lane) end
    redis.call('EXPIRE', k, retsec)
  end
  if lane ~= '' and (status == 'succeeded' or status == 'failed') then promote(tag, eid, did, lane) end
  addLater(statusKey(tag, eid, status), created, did)
  if status == 'retrying' then addLater(KEYS[4], nextAt, retryEntry(did, eid, gen, run)) end
  return status, evid, etype, gen
end

local OPERATIONAL = {['webhook.degraded'] = true, ['webhook.disabled'] = true, ['webhook.enabled'] = true,
  ['delivery.exhausted'] = true}

local tag, eid, now, retsec = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local nowN = tonumber(now)
local h = loadHealth(KEYS[1], ARGV[4], ARGV[5], ARGV[7])
local out, stats, ops = {}, {}, {}
local function note(opid) if opid then table.insert(ops, opid) end end
local current = unqueue()
for i = 9, #ARGV, PER do
  local did, entry, outcome, status, reason, att, at, nextAt, backoff, dur = ARGV[i], ARGV[i + 1], ARGV[i + 2],
    ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8] == '1', ARGV[i + 9]
  local atN, durN = tonumber(at), tonumber(dur)
  local keep = countStreak(h, did, outcome, reason, atN)
  adapt(h, outcome, backoff, nowN, atN - durN)
  if att ~= '' and h.status then tally(stats, atN, outcome == 'success', durN) end
  if current[did] then
    local evid, etype, gen
    status, evid, etype, gen = record(tag, eid, did, entry, h, status, att, nextAt, at, retsec, keep,
      {ARGV[i + 10], ARGV[i + 11]})
    if status == 'failed' and not OPERATIONAL[etype] then
      note(emit(tag, 'delivery.exhausted', eid, now, retsec, did .. gen, {'deliveryId', did, 'eventId', evid,
        'reason', outcome == 'expired' and 'event_expired' or 'attempts_exhausted', 'consecutiveFailures', h.fails}))
    end
  else
    if att ~= '' and redis.call('EXISTS', deliveryKey(tag, did)) == 1 then logAttempt(tag, did, att, retsec) end
    status = 'stale'
  end
  table.insert(out, status)
end
flush()
saveHealth(h)
saveStats(tag, eid, stats, ARGV[8])
if h.warned then
  note(emit(tag, 'webhook.degraded', eid, now, retsec, '', {'reason', 'consecutive_failures',
    'consecutiveFailures', h.fails}))
end
if h.reason ~= '' then
  holdAll(tag, eid, now, retsec)
  note(emit(tag, 'webhook.disabled', eid, now, retsec, '', {'reason', h.reason, 'consecutiveFailures', h.fails}))
end
local head = {h.reason, h.by, tostring(h.conc), tostring(#ops)}
for _, o in ipairs(ops) do table.insert(head, o) end
for _, st in ipairs(out) do table.insert(head, st) end
return head
