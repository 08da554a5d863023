-- fanout creates the deliveries of a stored event (see fanOut) for the given endpoints, or for
-- every subscriber when none are given; false when the event is gone.
--
-- KEYS[1] event (readEvent reads it, or its hash of an earlier version)   KEYS[2] subscribers of the type
-- ARGV[1] tag   ARGV[2] event id   ARGV[3] type   ARGV[4] now (ms)   ARGV[5] retention (s)
-- ARGV[6] delivery id namespace   ARGV[7...] endpoint ids
-- Returns the drains to schedule ("eid:n").
local ev = readEvent(ARGV[1], ARGV[2])
if not ev then return false end
NS = ARGV[6]
local eids = {}
for i = 7, #ARGV do table.insert(eids, ARGV[i]) end
if #eids == 0 then eids = redis.call('SMEMBERS', KEYS[2]) end
local drains = fanOut(ARGV[1], ARGV[2], ARGV[3], ev[3], eids, ARGV[4], ARGV[5], false, ev[4])
flush()
return drains
