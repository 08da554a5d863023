-- retract undoes a publish (a batch, or one event) none of whose work could be queued: its
-- events, their deliveries, the idempotency key and quota count, and the drains it scheduled
-- that have nothing else to do. All or nothing: when any event's work may already be under
-- way (an event made inline is gone, or a fan-out's outbox entry was swept), nothing is undone.
--
-- KEYS[1] idempotency key   KEYS[2] monthly usage   KEYS[3] outbox
-- then 3 per event: the event, the subscribers of its type, the tenant's events of its type
-- ARGV[1] tag   ARGV[2] delivery id namespace   ARGV[3] idempotency record ('' without a key)
-- ARGV[4] how many events the publish counted against the quota   ARGV[5] number of events N
-- ARGV[6] the day (Unix days) the events were published on
-- then 2 per event: id, '1' when its deliveries were created inline
-- then the drains ("eid:n") the publish scheduled
-- Returns 1 when retracted, 0 when the publish already stands.
local tag, count = ARGV[1], tonumber(ARGV[5])
for i = 0, count - 1 do
  local evid, inline = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
  if inline == '1' then
    if not readEvent(tag, evid) then return 0 end
  elseif not redis.call('ZSCORE', KEYS[3], fanoutEntry(evid)) then
    return 0
  end
end
NS = ARGV[2]
-- leaveLane takes a queued delivery out of its scan's lane, and ends the lane when it was its
-- head with nothing waiting.
local function leaveLane(eid, did, entry)
  local lane = select(7, parseEntry(entry))
  if lane == '' then return end
  local list = laneKey(tag, eid, lane)
  redis.call('LREM', list, 0, did)
  if redis.call('HGET', lanesKey(tag, eid), lane) == did and redis.call('LLEN', list) == 0 then
    redis.call('HDEL', lanesKey(tag, eid), lane)
  end
end
-- dropFromEntry takes id out of field f of scan index k, whose value is ids of 16 bytes each
-- (sep '') or ids separated by sep.
local function dropFromEntry(k, f, id, sep)
  local v = redis.call('HGET', k, f)
  if not v then return end
  local rest, each = {}, '[^' .. sep .. ']+'
  if sep == '' then each = string.rep('.', 16) end
  for x in string.gmatch(v, each) do
    if x ~= id then table.insert(rest, x) end
  end
  if #rest == 0 then
    redis.call('HDEL', k, f)
  else
    redis.call('HSET', k, f, table.concat(rest, sep))
  end
end

-- unindexScan takes an event out of its scan's entry in a day's scan index, in either form.
local function unindexScan(k, lane, evid)
  local f, v, sep = scanField(lane, evid)
  dropFromEntry(k, f, v, sep)
  if sep == '' then dropFromEntry(k, lane, evid, ' ') end
end
local function undoDeliveries(evid, subs)
  for _, eid in ipairs(redis.call('SMEMBERS', subs)) do
    local did = deliveryId(evid, eid)
    local entry = redis.call('HGET', queueKey(tag, eid), did)
    if entry then
      leaveLane(eid, did, entry)
      redis.call('HDEL', queueKey(tag, eid), did)
      redis.call('ZREM', statusKey(tag, eid, 'pending'), did)
      redis.call('ZREM', statusKey(tag, eid, WAITING), did)
    end
    local k = deliveryKey(tag, did)
    local st = redis.call('HGET', k, 'status')
    if st then
      redis.call('ZREM', statusKey(tag, eid, st), did)
      redis.call('DEL', k)
    end
  end
end
for i = 0, count - 1 do
  local evid = ARGV[7 + 2 * i]
  redis.call('ZREM', KEYS[3], fanoutEntry(evid))
  undoDeliveries(evid, KEYS[5 + 3 * i])
  local ev = readEvent(tag, evid)
  if ev and ev[3] ~= '' then unindexScan(scanIndexKey(tag, ARGV[6]), ev[3], evid) end
  redis.call('ZREM', KEYS[6 + 3 * i], eventMember(evid), evid)
  deleteEvent(tag, evid)
end
for i = 7 + 2 * count, #ARGV do
  local eid, n = string.match(ARGV[i], '^(.*):(%d+)$')
  if eid and redis.call('GET', drainKey(tag, eid)) == n and redis.call('ZCARD', statusKey(tag, eid, 'pending')) == 0 then
    redis.call('DEL', drainKey(tag, eid))
    redis.call('ZREM', KEYS[3], drainEntry(eid, n))
  end
end
if ARGV[3] ~= '' and redis.call('GET', KEYS[1]) == ARGV[3] then redis.call('DEL', KEYS[1]) end
if tonumber(ARGV[4]) > 0 then redis.call('DECRBY', KEYS[2], ARGV[4]) end
return 1
