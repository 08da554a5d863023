-- authenticate reads an API key's record once for the requests that arrived together naming it
-- (Authenticate's groups) and counts each one whose token is the key's (token.lua) against the
-- key's per-minute limit (gcra.lua's allowEach), in their order: one round trip for them all. A
-- token that names no key, or carries another secret, counts against nothing.
--
-- KEYS[1] the key's record (JSON)   KEYS[2] its rate limit
-- ARGV[1] the per-minute limit of a key that sets none   ARGV[2...] each request's token hash
-- (hex SHA-256)
-- Returns {} for an unknown key, else {the record, then per request '0' for another secret, or
-- '1' and allowEach's four}.
local rec, k = readToken(KEYS[1])
if not rec then return {} end
local limit = tonumber(k.rateLimitPerMinute) or 0
if limit <= 0 then limit = tonumber(ARGV[1]) end
local out, mine, counted = {rec}, {}, 0
for i = 2, #ARGV do
  mine[i] = isToken(k, ARGV[i])
  if mine[i] then counted = counted + 1 end
end
local rs, j = allowEach(KEYS[2], limit, limit, 60, counted), 0
for i = 2, #ARGV do
  if mine[i] then
    j = j + 1
    table.insert(out, '1')
    for _, v in ipairs(rs[j]) do table.insert(out, v) end
  else
    table.insert(out, '0')
  end
end
return out
