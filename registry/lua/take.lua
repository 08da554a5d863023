-- take hands a drain the next deliveries of its endpoint's queue, skipping those it has in
-- flight, with each event's body and the endpoint. The drain must hold the lease (a lapsed
-- lease is taken over); with endIfEmpty it ends there when nothing is queued.
--
-- KEYS[1] drain lease   KEYS[2] pending index (the queue)   KEYS[3] pend hash   KEYS[4] endpoint
-- KEYS[5] outbox
-- ARGV[1] tag   ARGV[2] drain number   ARGV[3] limit   ARGV[4] '1' renews the lease
-- ARGV[5] '1' ends the drain when nothing is queued   ARGV[6] endpoint id
-- ARGV[7...] delivery ids to skip
-- Returns {'lost'}, {'ended'} or {'ok', endpoint fields (flat), then id, entry and its event's
-- record as stored ('' when gone; Go reads it) per delivery}.
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
    redis.call('ZREM', KEYS[5], drainEntry(ARGV[6], n))
    return {'ended'}
  end
  return {'ok', {}}
end
local entries = redis.call('HMGET', KEYS[3], unpack(take))
local found, evids = {}, {}
for i, did in ipairs(take) do
  if entries[i] then
    table.insert(found, i)
    table.insert(evids, entryEvent(entries[i]))
  else
    redis.call('ZREM', KEYS[2], did) -- an index entry without a queue entry: nothing to send
  end
end
local out = {'ok', redis.call('HGETALL', KEYS[4])}
if #evids == 0 then return out end
local evs = readRecords(tag, evids)
for j, i in ipairs(found) do
  table.insert(out, take[i])
  table.insert(out, entries[i])
  table.insert(out, evs[j] or '')
end
return out
