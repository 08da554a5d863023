-- recover runs one step of a recovery: it walks the tenant's events in the recovery's window
-- from its cursor, a batch at a time, in creation order, and for each event:
-- a 'failed' delivery to the endpoint is queued again in a new run (fresh budget, same
-- webhook-id); with 'missing', an event of a type the endpoint subscribes to that has no
-- delivery to it gets one (but an operational event about the endpoint itself). Everything
-- else is left alone. The step is atomic with the cursor and the counts, so a crash repeats
-- nothing and two recoveries (or a manual retry) never
-- queue one delivery twice: each acts only on the state it finds. The step that finds nothing
-- left marks the recovery done, as does one that finds the endpoint disabled or deleted.
--
-- KEYS[1] recovery   KEYS[2] endpoint   KEYS[3] outbox   KEYS[4...] the tenant's events of each type
-- ARGV[1] tag   ARGV[2] endpoint id   ARGV[3] now (ms)   ARGV[4] batch size   ARGV[5] retention (s)
-- ARGV[6] delivery id namespace   ARGV[7] the recovery's outbox entry
-- Returns {'done' or 'running', steps, drain to schedule or ''}. A recovery that is done but
-- whose end was not yet reported (the reply of the step that finished it was lost) answers
-- 'done' with its steps again, so the caller reports it; once reported, with 0 steps.
local tag, eid, now, batch, retsec = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
NS = ARGV[6]
local r = redis.call('HMGET', KEYS[1], 'status', 'cursor', 'until', 'include', 'types', 'reported', 'steps')
if r[1] == 'done' and not r[6] then return {'done', r[7] or '0', ''} end
if r[1] ~= 'running' then return {'done', '0', ''} end
local function finish()
  redis.call('HSET', KEYS[1], 'status', 'done', 'finishedAt', now)
  redis.call('ZREM', KEYS[3], ARGV[7])
end
local ep = redis.call('HMGET', KEYS[2], 'status', 'ordering')
if ep[1] ~= 'active' then
  finish()
  return {'done', tostring(redis.call('HINCRBY', KEYS[1], 'steps', 1)), ''}
end

-- The next events after the cursor (exclusive), all of one millisecond together: a batch ends
-- before the first millisecond a truncated index may not have returned whole.
local evs, cut = {}, nil
for i = 4, #KEYS do
  local got = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. r[2], '(' .. r[3], 'WITHSCORES', 'LIMIT', 0, batch)
  for j = 1, #got, 2 do table.insert(evs, {tonumber(got[j + 1]), eventIdOf(got[j])}) end
  if #got == 2 * batch then
    local last = tonumber(got[#got])
    if not cut or last < cut then cut = last end
  end
end
local take = {}
for _, e in ipairs(evs) do
  if not cut or e[1] < cut then table.insert(take, e) end
end
if cut and #take == 0 then -- one millisecond holds a batch or more: take all of it
  for i = 4, #KEYS do
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], cut, cut)) do table.insert(take, {cut, eventIdOf(m)}) end
  end
end
table.sort(take, function(a, b) return a[1] < b[1] end) -- a scan's lane forms in creation order
if #take == 0 then
  finish()
  return {'done', tostring(redis.call('HINCRBY', KEYS[1], 'steps', 1)), ''}
end

local failed, missing = string.find(r[4], 'failed', 1, true), string.find(r[4], 'missing', 1, true)
local subscribed = {}
for t in string.gmatch(r[5], '[^,]+') do subscribed[t] = true end
local requeued, created, cursor, w = 0, 0, r[2], ''
for _, e in ipairs(take) do
  local evid = e[2]
  local did = deliveryId(evid, eid)
  local k = deliveryKey(tag, did)
  local st = redis.call('HGET', k, 'status')
  if not st and keptCreated(tag, eid, did) then st = 'succeeded' end
  if st == 'failed' and failed then
    requeue(tag, eid, did, now, ep[2] == 'scan', retsec)
    redis.call('EXPIRE', k, retsec)
    redis.call('EXPIRE', attemptsKey(tag, did), retsec)
    requeued = requeued + 1
  elseif not st and missing and redis.call('HEXISTS', queueKey(tag, eid), did) == 0 then
    local ev = readEvent(tag, evid)
    if ev and subscribed[ev[1]] and ev[4] ~= eid then -- an event about this endpoint never goes to it
      local woken = fanOut(tag, evid, ev[1], ev[3], {eid}, now, retsec, true, ev[4])
      if woken[1] then w = woken[1] end
      created = created + 1
    end
  end
  if tonumber(cursor) < e[1] then cursor = tostring(e[1]) end
end
flush()
redis.call('HSET', KEYS[1], 'cursor', cursor)
redis.call('HINCRBY', KEYS[1], 'requeued', requeued)
redis.call('HINCRBY', KEYS[1], 'created', created)
redis.call('ZADD', KEYS[3], now, ARGV[7]) -- a running recovery's entry stays young
if requeued + created > 0 and w == '' then w = wake(tag, eid, now) or '' end
return {'running', tostring(redis.call('HINCRBY', KEYS[1], 'steps', 1)), w}
