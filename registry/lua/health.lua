-- An endpoint's health as the outcome script keeps it, from its attempts' outcomes:
--   the failure streak (StreakRule in Go mirrors it): a failed attempt adds one, a success
--   resets it, throttled and expired outcomes leave it. An active endpoint is disabled when an
--   attempt says so (a 410), when an attempt fails during probation, or when the streak reaches
--   the threshold and its first failure is at least the window old. webhook.degraded is emitted
--   once per streak, when it reaches half the threshold.
--   probation: after a re-enable, until the first success; the drain sends one at a time.
--   effective concurrency (AIMD): a 429 or 503 to an attempt sent after the last halving halves
--   it (at least 1) and remembers one less than the throttled value as the safe level; answers
--   to attempts sent before it say nothing of the halved value and are let be (once per round
--   trip, as TCP does). Each run of as many successes as the current value adds one, up to the
--   maximum: at once below the safe level, above it (probing for more capacity) at most once a
--   second and not within a second of a halving; 10 s after the last halving the safe level is
--   forgotten (the receiver has taken every probe since). A receiver that throttles above 4 in
--   flight so sees the value dip to 2, climb back to 4 in two short runs, and probe 5 about
--   once a second.
--   hourly stats: attempts succeeded and failed, and a histogram of durations.
local function loadHealth(ek, threshold, window, maxConc)
  local v = redis.call('HMGET', ek, 'status', 'consecutiveFailures', 'streakStart', 'probation', 'degraded',
    'concurrency', 'okStreak', 'downAt', 'upAt', 'safe')
  local maxc = tonumber(maxConc)
  return {ek = ek, status = v[1], fails = tonumber(v[2] or '0') or 0, start = tonumber(v[3]),
    probation = v[4] == '1', degraded = v[5] == '1', threshold = tonumber(threshold), window = tonumber(window),
    conc = math.min(tonumber(v[6] or maxc) or maxc, maxc), maxc = maxc, ok = tonumber(v[7] or '0') or 0,
    downAt = tonumber(v[8] or '0') or 0, upAt = tonumber(v[9] or '0') or 0, safe = tonumber(v[10] or maxc) or maxc,
    changed = false, concChanged = false, reason = '', by = '',
    warned = false}
end

-- countStreak applies one attempt's outcome; it returns true when the attempt failed during
-- probation and so disabled the endpoint (its delivery is held without spending its budget).
local function countStreak(h, did, outcome, reason, at)
  if not h.status then return false end
  at = tonumber(at)
  if outcome == 'success' then
    if h.fails ~= 0 or h.probation or h.degraded then
      h.fails, h.start, h.probation, h.degraded, h.changed = 0, nil, false, false, true
    end
    return false
  end
  if outcome ~= 'failure' and outcome ~= 'gone' then return false end
  h.fails, h.changed = h.fails + 1, true
  if h.fails == 1 or not h.start then h.start = at end
  if h.status ~= 'active' then return false end
  local probationFailed = false
  if reason == '' and h.probation then reason, probationFailed = 'probation_failed', true end
  if reason == '' and h.fails >= h.threshold and at - h.start >= h.window then reason = 'consecutive_failures' end
  if not h.degraded and 2 * h.fails >= h.threshold then h.degraded, h.warned = true, true end
  if reason ~= '' then
    disable(h.ek, reason, at)
    h.status, h.reason, h.by, h.probation = 'disabled', reason, did, false
  end
  return probationFailed
end

-- adapt applies one attempt to the effective concurrency: backoff is a 429 or 503 answer, and
-- sent when the attempt started (ms).
local function adapt(h, outcome, backoff, now, sent)
  now = tonumber(now)
  if backoff then
    if tonumber(sent) > h.downAt then
      h.safe = math.max(1, h.conc - 1)
      h.conc, h.downAt, h.ok, h.concChanged = math.max(1, math.floor(h.conc / 2)), now, 0, true
    end
    return
  end
  if outcome ~= 'success' or h.conc >= h.maxc then return end
  h.ok, h.concChanged = h.ok + 1, true
  if h.ok < h.conc then return end
  local since = now - h.downAt
  if h.conc < h.safe or since >= 10000 or (now - h.upAt >= 1000 and since >= 1000) then
    h.conc, h.ok = h.conc + 1, 0
    if h.conc > h.safe then h.upAt = now end
  end
end

-- saveHealth writes what the batch changed; a deleted endpoint (no status) keeps nothing, so an
-- attempt finishing after the deletion cannot bring its hash back.
local function saveHealth(h)
  if not h.status then return end
  if h.changed then
    if h.fails == 0 then
      redis.call('HSET', h.ek, 'consecutiveFailures', 0)
      redis.call('HDEL', h.ek, 'streakStart', 'degraded', 'probation')
    else
      redis.call('HSET', h.ek, 'consecutiveFailures', h.fails, 'streakStart', h.start)
      if h.degraded then redis.call('HSET', h.ek, 'degraded', '1') end
      if not h.probation then redis.call('HDEL', h.ek, 'probation') end
    end
  end
  if not h.concChanged then return end
  if h.conc >= h.maxc then
    -- aimdAt: the one timestamp of an earlier form of the rule, left on endpoints it lowered.
    redis.call('HDEL', h.ek, 'concurrency', 'okStreak', 'downAt', 'upAt', 'safe', 'aimdAt')
  else
    redis.call('HSET', h.ek, 'concurrency', h.conc, 'okStreak', h.ok, 'downAt', h.downAt, 'upAt', h.upAt,
      'safe', h.safe)
  end
end

-- Duration buckets of the hourly stats, upper bounds in ms (the last is open): keep StatsBuckets
-- in Go in step.
local BUCKETS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000}

local BUCKET_FIELDS = {'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'b9', 'b10', 'b11', 'b12', 'b13'}

-- tally counts an attempt of ms milliseconds that ended at at (Unix ms) in its hour's stats. The
-- last hour's key is remembered: a batch's attempts are mostly of one (a string key: gopher-lua,
-- the embedded Redis's Lua, keeps a table's integer keys in an array as long as the largest one,
-- and an hour number is near 490,000).
local lastHour, lastHourText
local function tally(stats, at, ok, ms)
  local n = math.floor(tonumber(at) / 3600000)
  if n ~= lastHour then lastHour, lastHourText = n, string.format('%d', n) end
  local h = stats[lastHourText]
  if not h then
    h = {}
    stats[lastHourText] = h
  end
  local f = 'f'
  if ok then f = 's' end
  h[f] = (h[f] or 0) + 1
  ms = tonumber(ms)
  local b = #BUCKETS + 1
  for i, ub in ipairs(BUCKETS) do
    if ms <= ub then
      b = i
      break
    end
  end
  f = BUCKET_FIELDS[b]
  h[f] = (h[f] or 0) + 1
end

-- saveStats adds the batch's counts to each hour's record, kept for the stats' retention from
-- the last count that added a field (within the hour, so at least the retention after the
-- hour ends): the record's first write, and at most a few more an hour, set its expiry.
local function saveStats(tag, eid, stats, ttl)
  for hour, h in pairs(stats) do
    local k = statsKey(tag, eid, hour)
    local added = false
    for f, n in pairs(h) do
      if redis.call('HINCRBY', k, f, n) == n then added = true end
    end
    if added then redis.call('EXPIRE', k, ttl) end
  end
end
