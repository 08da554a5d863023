-- authenticate reads an API key's record and, when the token is the key's (token.lua), counts
-- the request against the key's per-minute limit (gcra.lua's allowN): one round trip for both.
-- A token that names no key, or carries another secret, counts against nothing.
--
-- KEYS[1] the key's record (JSON)   KEYS[2] its rate limit
-- ARGV[1] the token's hash (hex SHA-256)   ARGV[2] the per-minute limit of a key that sets none
-- Returns {} for an unknown key or another secret, else {the record, then allowN's four}.
local rec, k = tokenRecord(KEYS[1], ARGV[1])
if not rec then return {} end
local limit = tonumber(k.rateLimitPerMinute) or 0
if limit <= 0 then limit = tonumber(ARGV[2]) end
local r = allowN(KEYS[2], limit, limit, 60, 1)
return {rec, r[1], r[2], r[3], r[4]}
