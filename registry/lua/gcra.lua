-- GCRA rate limiting (the generic cell rate algorithm), as github.com/go-redis/redis_rate v10
-- does it, whose two scripts these functions are (allowEach its allow, for several events in a
-- row): its scripts cannot share a round trip with another read, and authentication reads the
-- key's record and counts its requests in one (authenticate.lua; a publish's in the publish's
-- own, publish.lua). Both run on Redis time, so every process shares one budget per key.
--
-- Copyright (c) 2013 The github.com/go-redis/redis_rate Authors; from
-- https://github.com/rwz/redis-gcra/blob/master/vendor/perform_gcra_ratelimit.lua,
-- Copyright (c) 2017 Pavel Pravosud. BSD 2-clause licence (redis_rate's LICENSE).
--
-- A limit is burst, rate and period (s): rate events a period, burst at once. A result is
-- {allowed, remaining, retry after (s, as a string; -1 when allowed), reset after (s, a string)}.

-- gcraNow is Redis time in s after Jan 1, 2017 (a float of at most 16 digits until 2048).
local function gcraNow()
  local t = redis.call('TIME')
  return (t[1] - 1483228800) + (t[2] / 1000000)
end

-- allowEach takes n events one at a time, in order, each allowed or not as it would be alone
-- at the same moment: one read and one write of the key for them all. It returns a result for
-- each (none, and no command, for n = 0).
local function allowEach(key, burst, rate, period, n)
  if n == 0 then return {} end
  local emission_interval = period / rate
  local burst_offset = emission_interval * burst
  local now = gcraNow()
  local tat = redis.call('GET', key)
  if not tat then tat = now else tat = tonumber(tat) end
  tat = math.max(tat, now)
  local out, allowed = {}, false
  for i = 1, n do
    local new_tat = tat + emission_interval
    local diff = now - (new_tat - burst_offset)
    local remaining = diff / emission_interval
    if remaining < 0 then
      out[i] = {0, 0, tostring(diff * -1), tostring(tat - now)}
    else
      out[i] = {1, remaining, tostring(-1), tostring(new_tat - now)}
      tat, allowed = new_tat, true
    end
  end
  local reset_after = tat - now
  if allowed and reset_after > 0 then redis.call('SET', key, tat, 'EX', math.ceil(reset_after)) end
  return out
end

-- allowAtMost takes up to cost events, as many as the budget holds.
local function allowAtMost(key, burst, rate, period, cost)
  local emission_interval = period / rate
  local burst_offset = emission_interval * burst
  local now = gcraNow()
  local tat = redis.call('GET', key)
  if not tat then tat = now else tat = tonumber(tat) end
  tat = math.max(tat, now)
  local diff = now - (tat - burst_offset)
  local remaining = diff / emission_interval
  if remaining < 1 then
    return {0, 0, tostring(emission_interval - diff), tostring(tat - now)}
  end
  if remaining < cost then
    cost = remaining
    remaining = 0
  else
    remaining = remaining - cost
  end
  local new_tat = tat + emission_interval * cost
  local reset_after = new_tat - now
  if reset_after > 0 then redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after)) end
  return {cost, remaining, tostring(-1), tostring(reset_after)}
end
