-- The check every token goes through, an API key's (authenticate.lua) and a portal session's:
-- its record's "hash" is the hex SHA-256 of the token, which the caller passes. The hashes are
-- compared as strings: what their timing could tell is of a SHA-256, not of the secret.

-- tokenRecord is the JSON record key holds, and its decoded fields, when hash is its hash; nil
-- for no record or another secret.
local function tokenRecord(key, hash)
  local rec = redis.call('GET', key)
  if not rec then return nil end
  local r = cjson.decode(rec)
  if r.hash ~= hash then return nil end
  return rec, r
end
