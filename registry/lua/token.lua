-- The check every token goes through, an API key's (authenticate.lua) and a portal session's:
-- its record's "hash" is the hex SHA-256 of the token, which the caller passes. The hashes are
-- compared as strings: what their timing could tell is of a SHA-256, not of the secret.

-- readToken is the JSON record key holds and its decoded fields; nil for none.
local function readToken(key)
  local rec = redis.call('GET', key)
  if not rec then return nil end
  return rec, cjson.decode(rec)
end

-- isToken tells whether hash is the hash of the token a record's fields describe.
local function isToken(r, hash) return r.hash == hash end

-- tokenRecord is the JSON record key holds, and its decoded fields, when hash is its hash; nil
-- for no record or another secret.
local function tokenRecord(key, hash)
  local rec, r = readToken(key)
  if not rec or not isToken(r, hash) then return nil end
  return rec, r
end
