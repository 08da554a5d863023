-- publish stores a batch of events (a single publish is a batch of one) in one step: all of
-- them or none, with the idempotency key that covers the batch and the tenant's monthly count
-- of every event. When at most inlineMax endpoints subscribe to an event, its deliveries are
-- queued in the same step; a larger fan-out is recorded in the outbox for a fan-out task.
--
-- KEYS[1] idempotency key   KEYS[2] monthly usage   KEYS[3] outbox
-- then 3 per event: the event, the subscribers of its type, the tenant's events of its type
-- ARGV[1] tag   ARGV[2] delivery id namespace   ARGV[3] retention (s)   ARGV[4] idempotency TTL (s)
-- ARGV[5] quota (0: none)   ARGV[6] usage TTL (s)
-- ARGV[7] the idempotency record's head, the request's hash and ':' ('' without a key); the
-- record is that and each event's "id=subscribers", comma-separated
-- ARGV[8] '1' for events of webhookd's own (no quota)   ARGV[9] inlineMax   ARGV[10] now (ms)
-- ARGV[11] today (Unix days)
-- then 7 per event: id, type, body, scan lane ('' for none), an endpoint to leave out ('' for none),
-- the id's 16 bytes ('' when it is no hexId), the lane's 10 bytes
-- Returns {'replay', idempotency record}, {'quota'} or
-- {'ok', then per event 'inline' or 'fanout' and its subscriber count, then the drains to schedule}.
-- indexScan adds an event to its scan's entry in the day's scan index (scanindex.go; TrimIndexes
-- sets the day's expiry).
local function indexScan(k, lane, evid)
  local f, v, sep = scanField(lane, evid)
  if redis.call('HSETNX', k, f, v) == 0 then
    redis.call('HSET', k, f, redis.call('HGET', k, f) .. sep .. v)
  end
end

local tag, retsec, now = ARGV[1], ARGV[3], ARGV[10]
local count = (#KEYS - 3) / 3
if ARGV[7] ~= '' then
  local prev = redis.call('GET', KEYS[1])
  if prev then return {'replay', prev} end
end
if ARGV[8] ~= '1' then
  local q = tonumber(ARGV[5])
  local used = redis.call('INCRBY', KEYS[2], count)
  if used == count then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
  if q > 0 and used > q then
    redis.call('DECRBY', KEYS[2], count)
    return {'quota'}
  end
end
NS = ARGV[2]
local out, drains, subsOf, record = {'ok'}, {}, {}, {}
for i = 0, count - 1 do
  local sk, tk = KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local a = 12 + 7 * i
  local evid, etype, lane, exclude = ARGV[a], ARGV[a + 1], ARGV[a + 3], ARGV[a + 4]
  knowBytes(evid, ARGV[a + 5], lane, ARGV[a + 6])
  subsOf[sk] = subsOf[sk] or redis.call('SMEMBERS', sk)
  local subs = subsOf[sk]
  storeEvent(tag, evid, etype, now, ARGV[a + 2], lane, exclude, retsec)
  record[#record + 1] = evid .. '=' .. #subs
  addLater(tk, now, eventMember(evid))
  if lane ~= '' then indexScan(scanIndexKey(tag, ARGV[11]), lane, evid) end
  if #subs > tonumber(ARGV[9]) then
    redis.call('ZADD', KEYS[3], now, fanoutEntry(evid))
    table.insert(out, 'fanout')
  else
    for _, d in ipairs(fanOut(tag, evid, etype, lane, subs, now, retsec, true, exclude)) do table.insert(drains, d) end
    table.insert(out, 'inline')
  end
  table.insert(out, tostring(#subs))
end
flush()
if ARGV[7] ~= '' then redis.call('SET', KEYS[1], ARGV[7] .. table.concat(record, ','), 'EX', ARGV[4]) end
for _, d in ipairs(drains) do table.insert(out, d) end
return out
