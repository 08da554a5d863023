-- Helpers every delivery script shares, after the key functions (keys.go) and the entry
-- encodings (outbox.go, queue.go). A script runs atomically inside one tenant's hash tag.
--
-- A delivery waiting for an attempt is "queued": its id is in its endpoint's pending index,
-- which is also the endpoint's queue, and its queue entry is a field of the endpoint's pend
-- hash. A delivery never attempted has no record of its own: the entry is all there is, and
-- reads answer from it. The endpoint's drain key holds the number of the one drain task that
-- works its queue, with a lease; wake schedules one when none holds it.
--
-- On an endpoint ordered by scan, the deliveries of one scan form a lane: its head is queued,
-- in flight or retrying, and the others wait behind it in publish order, in the lane's list
-- and the waiting index (shown as pending), each entry naming the delivery before it. When
-- the head succeeds or fails for good, Finish puts the next on the queue (promote).

-- NS is the namespace of delivery ids; a script that derives ids sets it from its arguments.
local NS = ''

-- VARIANT is a UUID's variant digit (binary 10xx) for the hash's digit in its place.
local VARIANT = {['0'] = '8', ['1'] = '9', ['2'] = 'a', ['3'] = 'b', ['4'] = '8', ['5'] = '9', ['6'] = 'a',
  ['7'] = 'b', ['8'] = '8', ['9'] = '9', a = 'a', b = 'b', c = '8', d = '9', e = 'a', f = 'b'}

-- deliveryId is registry.DeliveryID: a UUIDv5 (SHA-1) of the namespace, event and endpoint.
local function deliveryId(evid, eid)
  local a, b, c, v, d, e = string.match(redis.sha1hex(NS .. evid .. '/' .. eid),
    '^(........)(....).(...)(.)(...)(............)')
  return a .. '-' .. b .. '-5' .. c .. '-' .. VARIANT[v] .. d .. '-' .. e
end

-- Records that are written once and read by id (an event; a delivery that succeeded at its
-- first attempt) are kept as fields of one hash per minute, which expires the retention period
-- after its minute ends: a field needs no key and no expiry of its own (about 100 bytes each), and
-- a minute's hash is small enough to be freed at once.
local MINUTE = 60000
-- minuteOf remembers the last minute it formatted: a script's records are mostly of one. (Not a
-- table by minute: gopher-lua, the embedded Redis's Lua, keeps integer keys in an array as long
-- as the largest.)
local lastMinute, lastMinuteText
local function minuteOf(ms)
  local m = math.floor(tonumber(ms) / MINUTE)
  if m ~= lastMinute then lastMinute, lastMinuteText = m, string.format('%d', m) end
  return lastMinuteText
end

-- addLater adds a script's sorted-set entries one ZADD a key instead of one an entry, setLater
-- its hash fields one HSET a key, and expireMinute sets a minute hash's expiry once however many
-- fields the script wrote: a script that calls them calls flush before anything reads those
-- keys, and before it returns.
local adds, sets, ttls = {}, {}, {}
local function later(pending, key, a, b)
  local p = pending[key]
  if not p then
    p = {}
    pending[key] = p
  end
  p[#p + 1] = a
  p[#p + 1] = b
end
local function addLater(key, score, member) later(adds, key, score, member) end
local function setLater(key, field, value) later(sets, key, field, value) end

-- The part of the minute still to come counts, at most a minute: an id that only looks like a
-- UUIDv7 (an operational event's is a hash) may name any minute, and must not outlive the
-- retention period by more. A key gets the longest expiry its calls ask for: the earliest now's.
local ttlFrom = {}
local function expireMinute(key, minute, now, retsec)
  now = tonumber(now)
  local from = ttlFrom[key]
  if from and from <= now then return end
  ttlFrom[key] = now
  local left = math.min(math.max(0, (tonumber(minute) + 1) * MINUTE - now), MINUTE)
  ttls[key] = math.floor(left / 1000) + tonumber(retsec)
end

-- callPairs calls cmd on key with list's pairs of values, at most 1,000 values a call: Lua's
-- unpack takes fewer than 8,000 (a group of thousands of events of one type once failed on it).
local function callPairs(cmd, key, list)
  for i = 1, #list, 1000 do redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list))) end
end

local function flush()
  for key, f in pairs(sets) do callPairs('HSET', key, f) end
  for key, a in pairs(adds) do callPairs('ZADD', key, a) end
  for key, ttl in pairs(ttls) do redis.call('EXPIRE', key, ttl) end
  adds, sets, ttls, ttlFrom = {}, {}, {}, {}
end

-- woken and endpointState remember, for one run of a script, the endpoints wake has seen
-- (a drain is scheduled or holds the lease; no script that wakes an endpoint ends a lease)
-- and what fanOut read of each (no script that fans out changes an endpoint): a batch of
-- events to one endpoint reads it and wakes it once.
local woken, endpointState = {}, {}

-- wake makes sure a drain of the endpoint's queue is scheduled. It returns "eid:n" for the
-- caller to queue (in the outbox until that drain ends), or nil when one holds the lease.
local function wake(tag, eid, now)
  if woken[eid] then return nil end
  woken[eid] = true
  local q = drainKey(tag, eid)
  if redis.call('EXISTS', q) == 1 then return nil end
  local n = redis.call('INCR', drainCountKey(tag, eid))
  redis.call('SET', q, n, 'PX', LEASE)
  redis.call('ZADD', outboxKey(tag), now, drainEntry(eid, n))
  return eid .. ':' .. n
end

-- move re-indexes a delivery whose status and createdAt the caller already read.
local function move(tag, eid, did, old, new, score, now)
  redis.call('HSET', deliveryKey(tag, did), 'status', new, 'updatedAt', now)
  if old == new then return end
  if old then redis.call('ZREM', statusKey(tag, eid, old), did) end
  redis.call('ZADD', statusKey(tag, eid, new), score, did)
end

local function setStatus(tag, eid, did, new, now)
  local cur = redis.call('HMGET', deliveryKey(tag, did), 'status', 'createdAt')
  move(tag, eid, did, cur[1], new, cur[2], now)
end

-- place puts a delivery in run gen on its endpoint's queue (at flush), or, when ordered and its
-- lane has another head, behind the lane's last delivery. It returns true when the delivery is
-- queued.
local function place(tag, eid, did, evid, etype, created, gen, rec, run, lane, ordered, retsec)
  local pend = queueKey(tag, eid)
  if ordered and lane ~= '' then
    local lk = lanesKey(tag, eid)
    local head = redis.call('HGET', lk, lane)
    if head and head ~= did then
      local list = laneKey(tag, eid, lane)
      local before = redis.call('LINDEX', list, -1) or head
      redis.call('RPUSH', list, did)
      redis.call('EXPIRE', list, retsec)
      redis.call('ZADD', statusKey(tag, eid, WAITING), created, did)
      redis.call('HSET', pend, did, queueEntry(evid, etype, created, gen, rec, run, lane, before))
      return false
    end
    redis.call('HSET', lk, lane, did)
  end
  addLater(statusKey(tag, eid, 'pending'), created, did)
  setLater(pend, did, queueEntry(evid, etype, created, gen, rec, run, lane, ''))
  return true
end

-- enqueue places a delivery that has a record in run gen with run attempts made so far (see
-- place); it returns true when the delivery is queued.
local function enqueue(tag, eid, did, gen, run, now, ordered, retsec)
  local k = deliveryKey(tag, did)
  local cur = redis.call('HMGET', k, 'status', 'createdAt', 'eventId', 'eventType', 'lane')
  redis.call('HSET', k, 'status', 'pending', 'updatedAt', now, 'nextAttemptAt', now)
  if cur[1] then redis.call('ZREM', statusKey(tag, eid, cur[1]), did) end
  if cur[1] == 'pending' then redis.call('ZREM', statusKey(tag, eid, WAITING), did) end
  return place(tag, eid, did, cur[3], cur[4], cur[2], gen, '1', run, cur[5] or '', ordered, retsec)
end

-- requeue places a delivery that has a record in a new run: a new generation (older timers
-- and attempts of it are stale) and a fresh attempt budget.
local function requeue(tag, eid, did, now, ordered, retsec)
  local gen = redis.call('HINCRBY', deliveryKey(tag, did), 'generation', 1)
  redis.call('HSET', deliveryKey(tag, did), 'runAttempts', 0)
  return enqueue(tag, eid, did, gen, 0, now, ordered, retsec)
end

-- holdQueued holds every delivery of one index of queue entries (the queue, or the waiting
-- index) in a new generation; it returns how many.
local function holdQueued(tag, eid, idx, now, retsec)
  local n = 0
  local pk = queueKey(tag, eid)
  local queued = redis.call('ZRANGE', idx, 0, -1, 'WITHSCORES')
  for i = 1, #queued, 2 do
    local did = queued[i]
    local entry = redis.call('HGET', pk, did)
    local k = deliveryKey(tag, did)
    local held = true
    if redis.call('EXISTS', k) == 1 then
      redis.call('HINCRBY', k, 'generation', 1)
      redis.call('HSET', k, 'nextAttemptAt', '', 'status', 'held', 'updatedAt', now)
    elseif entry then
      local evid, etype, created, gen, rec, run, lane = parseEntry(entry)
      redis.call('HSET', k, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', 'held',
        'attemptCount', 0, 'runAttempts', 0, 'generation', gen + 1, 'createdAt', created, 'updatedAt', now,
        'nextAttemptAt', '')
      if lane ~= '' then redis.call('HSET', k, 'lane', lane) end
      redis.call('EXPIRE', k, retsec)
    else
      held = false
    end
    if held then
      redis.call('ZADD', statusKey(tag, eid, 'held'), queued[i + 1], did)
      n = n + 1
    end
  end
  redis.call('DEL', idx)
  return n
end

-- clearLanes forgets an endpoint's scan lanes (their deliveries were held or queued).
local function clearLanes(tag, eid)
  local lk = lanesKey(tag, eid)
  for _, lane in ipairs(redis.call('HKEYS', lk)) do redis.call('DEL', laneKey(tag, eid, lane)) end
  redis.call('DEL', lk)
end

-- holdAll holds every queued, waiting and retrying delivery of a disabled endpoint, each in a
-- new generation so that drains and timers already under way find it stale. Re-enabling
-- queues them again in creation order, so lanes form again as they were.
local function holdAll(tag, eid, now, retsec)
  local n = holdQueued(tag, eid, statusKey(tag, eid, 'pending'), now, retsec)
  n = n + holdQueued(tag, eid, statusKey(tag, eid, WAITING), now, retsec)
  redis.call('DEL', queueKey(tag, eid))
  clearLanes(tag, eid)
  for _, did in ipairs(redis.call('ZRANGE', statusKey(tag, eid, 'retrying'), 0, -1)) do
    local k = deliveryKey(tag, did)
    if redis.call('EXISTS', k) == 1 then
      redis.call('HINCRBY', k, 'generation', 1)
      redis.call('HSET', k, 'nextAttemptAt', '')
      setStatus(tag, eid, did, 'held', now)
      n = n + 1
    else
      redis.call('ZREM', statusKey(tag, eid, 'retrying'), did)
    end
  end
  return n
end

local function disable(ek, reason, now)
  redis.call('HSET', ek, 'status', 'disabled', 'disabledReason', reason, 'disabledAt', now, 'updatedAt', now)
end

-- bytesOf is the bytes a string of hex digits spells (a delivery or event id's 32, a lane's 20),
-- read 8 digits at a time: Redis's struct library packs each number's 4 bytes, five times as fast
-- as the script taking them apart, which a server without it (the embedded one) still does. hexOf
-- the other way, for 16 bytes.
local PACK, structLib = {[20] = '>I4I4I2', [32] = '>I4I4I4I4'}, rawget(_G, 'struct')
local function bytesOf(h)
  local s = string.sub
  if structLib and PACK[#h] then
    return structLib.pack(PACK[#h], tonumber(s(h, 1, 8), 16), tonumber(s(h, 9, 16), 16),
      tonumber(s(h, 17, 24), 16), tonumber(s(h, 25, 32), 16))
  end
  local b, k = {}, 0
  for i = 1, #h, 8 do
    local c = s(h, i, i + 7)
    local n, m = tonumber(c, 16), #c / 2
    for j = m, 1, -1 do
      b[k + j] = n % 256
      n = (n - n % 256) / 256
    end
    k = k + m
  end
  return string.char(unpack(b))
end
local HEX16 = string.rep('%02x', 16)
local function hexOf(b) return string.format(HEX16, string.byte(b, 1, 16)) end

-- hexId tells an event id that compact records keep as 16 bytes: "evt_" and 32 lowercase hex
-- digits (every id webhookd makes); once a script.
local hexIds = {}
local function hexId(evid)
  local h = hexIds[evid]
  if h == nil then
    h = #evid == 36 and string.find(evid, '^evt_[0-9a-f]+$') ~= nil
    hexIds[evid] = h
  end
  return h
end

-- eventField is a hex event id's 16 bytes, once a script.
local idBytes = {}
local function eventField(evid)
  local b = idBytes[evid]
  if not b then
    b = bytesOf(string.sub(evid, 5))
    idBytes[evid] = b
  end
  return b
end

-- scanField is an event's field and value in its scan's entry of a day's scan index, and the
-- separator between values (scanindex.go): the lane's 10 bytes and the id's 16 (none) for a
-- hexId, else the lane and the id as text (a space).
local laneBytes = {}
local function scanField(lane, evid)
  if not hexId(evid) or #lane ~= 20 or not string.find(lane, '^%x+$') then return lane, evid, ' ' end
  local b = laneBytes[lane]
  if not b then
    b = bytesOf(lane)
    laneBytes[lane] = b
  end
  return b, eventField(evid), ''
end

-- knowBytes takes the bytes of an event id ('' when it is no hexId) and of a lane from Go, which
-- encodes them faster than a script.
local function knowBytes(evid, b, lane, lb)
  hexIds[evid] = b ~= ''
  if b ~= '' then idBytes[evid] = b end
  if lane ~= '' then laneBytes[lane] = lb end
end

-- An event's record is one string (eventrecord.go): "type|at|lane|exclude|body", at its
-- creation in ms, lane its scan's ('' for none), exclude the endpoint left out ('' for none).
-- An event whose id is a UUIDv7 (delivery.NewEventID: every published or test event) is kept
-- as a field of the hash of the minute its id names (eventMinuteKey): the field is the id's 16
-- bytes, the record compact, "\3", its type's code, at after the id's time, then
-- "|lane|exclude|body". Another id, or an event stored by an earlier version, has a key of its
-- own (eventKey); the version before kept the minute hash's fields as text (the id, the record
-- as a string), and the hash of an even earlier version (legacyEventKey) is read until it expires.

-- eventTime is the minute and the ms a UUIDv7 event id ("evt_" and 32 hex digits) names; nil
-- for another id.
local function eventTime(evid)
  if not hexId(evid) or string.sub(evid, 17, 17) ~= '7' then return nil end
  local ms = tonumber(string.sub(evid, 5, 16), 16)
  return minuteOf(ms), ms
end

-- eventMember is an event's member in its type's index: its id's 16 bytes for a hexId, else
-- the id (eventlog.go); eventIdOf reads a member of either form back.
local function eventMember(evid)
  if hexId(evid) then return eventField(evid) end
  return evid
end
local function eventIdOf(m)
  if #m == 16 and string.sub(m, 1, 4) ~= 'evt_' then return 'evt_' .. hexOf(m) end
  return m
end

-- storeEvent keeps an event's record v (eventrecord.go encodes it), stored at now (ms): in its
-- minute's hash at flush, or under a key of its own.
local function storeEvent(tag, evid, now, v, retsec)
  local h = eventTime(evid)
  if not h then
    redis.call('SET', eventKey(tag, evid), v, 'EX', retsec)
    return
  end
  local k = eventMinuteKey(tag, h)
  setLater(k, eventField(evid), v)
  expireMinute(k, h, now, retsec)
end

-- parseEvent reads a record of either form as {type, at, lane, exclude, body}; ms is the time its
-- id names.
local function parseEvent(v, ms)
  if string.byte(v, 1) == 3 then
    local _, e, delta, lane, exclude = string.find(v, '^(%-?%d+)|([^|]*)|([^|]*)|', 3)
    return {CODE_TYPE[string.sub(v, 2, 2)], string.format('%d', ms + tonumber(delta)), lane, exclude, string.sub(v, e + 1)}
  end
  local _, e, typ, at, lane, exclude = string.find(v, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|')
  return {typ, at, lane, exclude, string.sub(v, e + 1)}
end

-- readRecords reads events' records as stored, in either form (the hash of the earliest
-- versions as a string record): one HMGET a minute hash of the ids' 16-byte fields, another of
-- the fields of the version before (the id as text) for those not found, then one MGET of their
-- own keys for those still missing; nil for one gone.
local function readRecords(tag, evids)
  local out, byMinute, missed = {}, {}, {}
  for i, evid in ipairs(evids) do
    local h = eventTime(evid)
    if h then
      byMinute[h] = byMinute[h] or {}
      table.insert(byMinute[h], i)
    else
      table.insert(missed, i)
    end
  end
  for h, at in pairs(byMinute) do
    local k, fields, again = eventMinuteKey(tag, h), {}, {}
    for j, i in ipairs(at) do fields[j] = eventField(evids[i]) end
    local vs = redis.call('HMGET', k, unpack(fields))
    for j, i in ipairs(at) do
      out[i] = vs[j] or nil
      if not out[i] then table.insert(again, i) end
    end
    if #again > 0 then
      for j, i in ipairs(again) do fields[j] = evids[i] end
      vs = redis.call('HMGET', k, unpack(fields, 1, #again))
      for j, i in ipairs(again) do
        out[i] = vs[j] or nil
        if not out[i] then table.insert(missed, i) end
      end
    end
  end
  if #missed == 0 then return out end
  local keys = {}
  for j, i in ipairs(missed) do keys[j] = eventKey(tag, evids[i]) end
  local vs = redis.call('MGET', unpack(keys))
  for j, i in ipairs(missed) do
    out[i] = vs[j] or nil
    if not out[i] then
      local h = redis.call('HMGET', legacyEventKey(tag, evids[i]), 'type', 'at', 'lane', 'exclude', 'body', 'createdAt')
      if h[1] then out[i] = h[1] .. '|' .. (h[2] or h[6] or '') .. '|' .. (h[3] or '') .. '|' .. (h[4] or '') .. '|' .. (h[5] or '') end
    end
  end
  return out
end

-- readEvents reads events' records, each as {type, at, lane, exclude, body}; nil for one gone.
local function readEvents(tag, evids)
  local out = {}
  for i, v in pairs(readRecords(tag, evids)) do out[i] = parseEvent(v, select(2, eventTime(evids[i]))) end
  return out
end

-- deleteEvent deletes an event's record, in whichever form it is.
local function deleteEvent(tag, evid)
  local h = eventTime(evid)
  if h then redis.call('HDEL', eventMinuteKey(tag, h), eventField(evid), evid) end
  redis.call('DEL', eventKey(tag, evid), legacyEventKey(tag, evid))
end

local function readEvent(tag, evid) return readEvents(tag, {evid})[1] end

-- A delivery that succeeded at its first attempt has no record of its own: it is kept as one
-- field of its creation minute's hash (keptKey), and its entry in the endpoint's succeeded index
-- gives its creation time. The rest of its record is known: webhookId, status succeeded,
-- attemptCount and runAttempts 1, generation 0, no next attempt. kept.go says how the field
-- and value are encoded (keptField, keptValue; Finish passes them) and reads them.

-- keptField is a kept delivery's field: its id's 16 bytes.
local function keptField(did)
  local h = string.gsub(did, '-', '')
  if #h ~= 32 then return did end
  return bytesOf(h)
end

-- keptParts reads a kept value of either form: event id, type, the attempt's end, the attempt.
local function keptParts(v, created)
  if string.byte(v, 1) == 2 then
    local _, _, delta, n, ms, sub, rest = string.find(v, '^(%-?%d+)|(%d+) (%-?%d+):(%d+) (.*)$', 19)
    return 'evt_' .. hexOf(string.sub(v, 2, 17)), CODE_TYPE[string.sub(v, 18, 18)],
      string.format('%d', created + tonumber(delta)),
      n .. ' ' .. string.format('%d', created + tonumber(ms)) .. sub .. ' ' .. rest
  end
  local _, e, evid, etype, at = string.find(v, '^([^|]*)|([^|]*)|([^|]*)|')
  return evid, etype, at, string.sub(v, e + 1)
end

-- keepSuccess keeps a delivery whose first attempt, ended at at, succeeded: field and value as
-- Finish encodes them (kept.go), written at flush.
local function keepSuccess(tag, created, field, value, at, retsec)
  local h = minuteOf(created)
  local k = keptKey(tag, h)
  setLater(k, field, value)
  expireMinute(k, h, at, retsec)
end

-- keptCreated is a kept delivery's creation time, or nil when the endpoint's succeeded index
-- does not list it (it may still have a record).
local function keptCreated(tag, eid, did)
  return redis.call('ZSCORE', statusKey(tag, eid, 'succeeded'), did)
end

-- unkeep gives a kept delivery its record again (a manual retry changes it); it does nothing
-- for one that has a record or is unknown.
local function unkeep(tag, eid, did, retsec)
  local k = deliveryKey(tag, did)
  if redis.call('EXISTS', k) == 1 then return end
  local created = keptCreated(tag, eid, did)
  if not created then return end
  local kk, f = keptKey(tag, minuteOf(created)), keptField(did)
  local vs = redis.call('HMGET', kk, f, did)
  local v = vs[1] or vs[2]
  if not v then return end
  local evid, etype, at, first = keptParts(v, created)
  redis.call('HSET', k, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', 'succeeded',
    'attemptCount', 1, 'runAttempts', 1, 'generation', 0, 'createdAt', created, 'updatedAt', at,
    'nextAttemptAt', '', 'first', first)
  redis.call('EXPIRE', k, retsec)
  redis.call('HDEL', kk, f, did)
end

local function newDelivery(tag, did, eid, evid, etype, status, now, retsec, lane)
  local k = deliveryKey(tag, did)
  local next = ''
  if status == 'pending' then next = now end
  redis.call('HSET', k, 'webhookId', eid, 'eventId', evid, 'eventType', etype, 'status', status,
    'attemptCount', 0, 'runAttempts', 0, 'generation', 0, 'createdAt', now, 'updatedAt', now, 'nextAttemptAt', next)
  if lane ~= '' then redis.call('HSET', k, 'lane', lane) end
  redis.call('EXPIRE', k, retsec)
  redis.call('ZADD', statusKey(tag, eid, status), now, did)
end

-- fanOut creates one delivery of the event per endpoint (but exclude) unless it exists: queued or waiting in
-- its scan's lane (no record) for an active endpoint, held (with a record) for a disabled one.
-- It returns the drains to schedule (see wake) for the endpoints with queued deliveries.
local function fanOut(tag, evid, etype, lane, eids, now, retsec, fresh, exclude)
  local out = {}
  for _, eid in ipairs(eids) do
    local ep = {false}
    if eid ~= exclude then
      ep = endpointState[eid] or redis.call('HMGET', endpointKey(tag, eid), 'status', 'ordering')
      endpointState[eid] = ep
    end
    local st = ep[1]
    if st then
      local did = deliveryId(evid, eid)
      local exists, queued = false, false
      if not fresh then
        if redis.call('HEXISTS', queueKey(tag, eid), did) == 1 then
          exists, queued = true, true
        elseif redis.call('EXISTS', deliveryKey(tag, did)) == 1 or keptCreated(tag, eid, did) then
          exists = true
        end
      end
      if not exists then
        local l = '' -- a lane only on an endpoint ordered by scan
        if ep[2] == 'scan' then l = lane end
        if st == 'active' then
          -- gen and run as text: a number is formatted anew at every concatenation
          queued = place(tag, eid, did, evid, etype, now, '0', '0', '0', l, true, retsec)
        else
          newDelivery(tag, did, eid, evid, etype, 'held', now, retsec, l)
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

-- emit records an operational event about an endpoint for the tenant's other endpoints that
-- subscribe to its type: an op record and its outbox entry, until delivery publishes it as an
-- event. fields is a flat list of the record's other fields; seed tells apart events of one type
-- and endpoint recorded in the same millisecond. Nothing is recorded when no other endpoint
-- subscribes. Called only by the script that makes the change, so each is recorded once. It
-- returns the op's id, or nil.
local function emit(tag, typ, eid, now, retsec, seed, fields)
  local subs = subscribersKey(tag, typ)
  local n = redis.call('SCARD', subs)
  if n == 0 or (n == 1 and redis.call('SISMEMBER', subs, eid) == 1) then return end
  local opid = string.sub(redis.sha1hex(typ .. '|' .. eid .. '|' .. now .. '|' .. seed), 1, 32)
  local k = opKey(tag, opid)
  redis.call('HSET', k, 'type', typ, 'webhookId', eid, 'at', now, unpack(fields))
  redis.call('EXPIRE', k, retsec)
  redis.call('ZADD', outboxKey(tag), now, opEntry(opid))
  return opid
end
