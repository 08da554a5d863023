-- publish stores the batches of events of one or more publish requests of a tenant (a single
-- publish is a batch of one), one request after the other, as separate calls would: each
-- request's batch all or none, with the idempotency key that covers it and the tenant's monthly
-- count of every event. When at most inlineMax endpoints subscribe to an event, its deliveries
-- are queued in the same step; a larger fan-out is recorded in the outbox for a fan-out task.
--
-- KEYS[1] outbox, then per request: its idempotency key, its month's usage, with a key check
-- the key's record and its rate limit, and 2 per event: the subscribers of its type, the
-- tenant's events of its type
-- ARGV[1] tag   ARGV[2] delivery id namespace   ARGV[3] retention (s)   ARGV[4] idempotency TTL (s)
-- ARGV[5] quota (0: none)   ARGV[6] usage TTL (s)   ARGV[7] '1' for events of webhookd's own (no
-- quota)   ARGV[8] inlineMax
-- then per request: the idempotency record's head, the request's hash and ':' ('' without a
-- key; the record is that and each event's "id=subscribers", comma-separated), now (ms), today
-- (Unix days), its number of events, the key's record as the caller read it ('' for no key check:
-- keycheck.go) and its per-minute limit; then 7 per event: id, type, its record (eventrecord.go),
-- scan lane ('' for none), an endpoint to leave out ('' for none), the id's 16 bytes ('' when it
-- is no hexId), the lane's 10 bytes
-- Returns per request, in order: with a key check, 'stale' (and nothing else for it) or 'counted'
-- and allowEach's four (nothing else when it refused); then 'replay' and the idempotency record,
-- 'quota', or 'ok', then
-- per event 'inline' or 'fanout' and its subscriber count, then the number of drains to
-- schedule and the drains.
-- indexScan adds an event to its scan's entry in the day's scan index (scanindex.go; TrimIndexes
-- sets the day's expiry).
local function indexScan(k, lane, evid)
  local f, v, sep = scanField(lane, evid)
  if redis.call('HSETNX', k, f, v) == 0 then
    redis.call('HSET', k, f, redis.call('HGET', k, f) .. sep .. v)
  end
end

local tag, retsec, inlineMax = ARGV[1], ARGV[3], tonumber(ARGV[8])
NS = ARGV[2]
local subsOf, out = {}, {}

-- storeAll stores a request's count events, whose keys start at KEYS[k] and arguments at
-- ARGV[a], at now (ms) on day today; it appends to out what they were and the drains they
-- scheduled, and returns the idempotency record.
local function storeAll(k, a, count, now, today, head)
  local drains, record = {}, {}
  local nowN = tonumber(now)
  for i = 0, count - 1 do
    local sk, tk, ai = KEYS[k + 2 * i], KEYS[k + 1 + 2 * i], a + 7 * i
    local evid, etype, lane, exclude = ARGV[ai], ARGV[ai + 1], ARGV[ai + 3], ARGV[ai + 4]
    knowBytes(evid, ARGV[ai + 5], lane, ARGV[ai + 6])
    subsOf[sk] = subsOf[sk] or redis.call('SMEMBERS', sk)
    local subs = subsOf[sk]
    storeEvent(tag, evid, nowN, ARGV[ai + 2], retsec)
    record[#record + 1] = evid .. '=' .. #subs
    addLater(tk, now, eventMember(evid))
    if lane ~= '' then indexScan(scanIndexKey(tag, today), lane, evid) end
    if #subs > inlineMax then
      redis.call('ZADD', KEYS[1], now, fanoutEntry(evid))
      table.insert(out, 'fanout')
    else
      for _, d in ipairs(fanOut(tag, evid, etype, lane, subs, now, retsec, true, exclude)) do table.insert(drains, d) end
      table.insert(out, 'inline')
    end
    table.insert(out, tostring(#subs))
  end
  table.insert(out, tostring(#drains))
  for _, d in ipairs(drains) do table.insert(out, d) end
  return head .. table.concat(record, ',')
end

-- requests lists the requests: where each one's keys (k) and arguments (a) start, where its
-- events' keys do (ek), its number of events and its key check's record ('' for none).
local function requests()
  local rs, k, a = {}, 2, 9
  while a <= #ARGV do
    local r = {k = k, a = a, ek = k + 2, count = tonumber(ARGV[a + 3]), rec = ARGV[a + 4]}
    if r.rec ~= '' then r.ek = k + 4 end
    rs[#rs + 1] = r
    k, a = r.ek + 2 * r.count, a + 6 + 7 * r.count
  end
  return rs
end

-- checkKeys answers the requests' key checks before any is published, as authenticate.lua would
-- for each key: one read of each key's record (KEYS[k + 2] of a request with a check), then one
-- count of each key's limit (KEYS[k + 3]) for all its requests in their order. It returns per
-- request with a check 'stale', or allowEach's result for it.
local function checkKeys(rs)
  local checks, recs, limits = {}, {}, {}
  for i, r in ipairs(rs) do
    if r.rec ~= '' then
      local rk, qk = KEYS[r.k + 2], KEYS[r.k + 3]
      if recs[rk] == nil then recs[rk] = redis.call('GET', rk) or false end
      if recs[rk] ~= r.rec then
        checks[i] = 'stale'
      else
        limits[qk] = limits[qk] or {n = 0, j = 0, limit = tonumber(ARGV[r.a + 5])}
        limits[qk].n, checks[i] = limits[qk].n + 1, qk
      end
    end
  end
  for qk, l in pairs(limits) do l.rs = allowEach(qk, l.limit, l.limit, 60, l.n) end
  for i = 1, #rs do
    local l = limits[checks[i]]
    if l then
      l.j = l.j + 1
      checks[i] = l.rs[l.j]
    end
  end
  return checks
end

-- keyAllows answers a request's key check as checkKeys found it: whether it may be published.
local function keyAllows(check)
  if check == 'stale' then
    table.insert(out, 'stale')
    return false
  end
  for _, v in ipairs({'counted', tostring(check[1]), tostring(math.floor(check[2])), check[3], check[4]}) do
    table.insert(out, v)
  end
  return check[1] == 1
end

-- publish answers request r (requests) after its key check, if any (checkKeys).
local function publish(r, check)
  local k, a, count, head = r.k, r.a, r.count, ARGV[r.a]
  if check and not keyAllows(check) then return end
  if head ~= '' then
    local prev = redis.call('GET', KEYS[k])
    if prev then
      table.insert(out, 'replay')
      table.insert(out, prev)
      return
    end
  end
  if ARGV[7] ~= '1' then
    local q = tonumber(ARGV[5])
    local used = redis.call('INCRBY', KEYS[k + 1], count)
    if used == count then redis.call('EXPIRE', KEYS[k + 1], ARGV[6]) end
    if q > 0 and used > q then
      redis.call('DECRBY', KEYS[k + 1], count)
      table.insert(out, 'quota')
      return
    end
  end
  table.insert(out, 'ok')
  local record = storeAll(r.ek, a + 6, count, ARGV[a + 1], ARGV[a + 2], head)
  if head ~= '' then redis.call('SET', KEYS[k], record, 'EX', ARGV[4]) end
end

local rs = requests()
local checks = checkKeys(rs)
for i, r in ipairs(rs) do publish(r, checks[i]) end
flush()
return out
