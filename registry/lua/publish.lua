-- publish stores the batches of events of one or more publish requests of a tenant (a single
-- publish is a batch of one), one request after the other, as separate calls would: each
-- request's batch all or none, with the idempotency key that covers it and the tenant's monthly
-- count of every event. When at most inlineMax endpoints subscribe to an event, its deliveries
-- are queued in the same step; a larger fan-out is recorded in the outbox for a fan-out task.
--
-- KEYS[1] outbox, then per request: its idempotency key, its month's usage, and 2 per event: the
-- subscribers of its type, the tenant's events of its type
-- ARGV[1] tag   ARGV[2] delivery id namespace   ARGV[3] retention (s)   ARGV[4] idempotency TTL (s)
-- ARGV[5] quota (0: none)   ARGV[6] usage TTL (s)   ARGV[7] '1' for events of webhookd's own (no
-- quota)   ARGV[8] inlineMax
-- then per request: the idempotency record's head, the request's hash and ':' ('' without a
-- key; the record is that and each event's "id=subscribers", comma-separated), now (ms), today
-- (Unix days), its number of events; then 7 per event: id, type, its record (eventrecord.go),
-- scan lane ('' for none), an endpoint to leave out ('' for none), the id's 16 bytes ('' when it
-- is no hexId), the lane's 10 bytes
-- Returns per request, in order: 'replay' and the idempotency record, 'quota', or 'ok', then
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

-- publish answers one request, whose keys start at KEYS[k] and arguments at ARGV[a].
local function publish(k, a, count)
  local head = ARGV[a]
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
  local record = storeAll(k + 2, a + 4, count, ARGV[a + 1], ARGV[a + 2], head)
  if head ~= '' then redis.call('SET', KEYS[k], record, 'EX', ARGV[4]) end
end

local k, a = 2, 9
while a <= #ARGV do
  local count = tonumber(ARGV[a + 3])
  publish(k, a, count)
  k, a = k + 2 + 2 * count, a + 4 + 7 * count
end
flush()
return out
