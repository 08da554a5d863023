package registry

import "strconv"

// Key layout. Every key one operation touches together shares a Redis Cluster hash tag:
// all of a tenant's endpoints, events, deliveries and counters live under {t:<tenantID>},
// an API key under {k:<keyID>}. This file is the only place that spells key names: the Go
// functions below build the keys a command or a script's KEYS names, and luaKeys builds,
// from the same parts, the Lua functions a script uses for the keys it finds as it runs (the
// deliveries in a queue, the event a queue entry names, the endpoints subscribed to a type).
// Those keys carry the tag the script was routed by, so a script stays in one slot.

const prefix = "wh:"

// Name parts shared by the Go and the Lua key functions.
const (
	partEndpoint    = ":ep:"
	partDelivery    = ":dlv:"
	partEvent       = ":ev:"   // an event's record (a string, eventrecord.go)
	partLegacyEvent = ":evt:"  // an event's record as the hash of earlier versions
	partIndex       = ":dlv"   // after an endpoint key, then ":"+status: its deliveries of one status
	partAttempts    = ":att"   // after a delivery key: its attempts after the first
	partQueue       = ":pend"  // after an endpoint key: its queue entries
	partDrain       = ":drain" // after an endpoint key: the lease of the drain working its queue
	partDrainCount  = ":n"     // after a drain key: the number of the last drain
	partOutbox      = ":outbox"
	partLanes       = ":lanes"  // after an endpoint key: the head of each scan's lane
	partLane        = ":lane:"  // after an endpoint key: one scan's lane, the deliveries waiting in it
	partScan        = ":scan:"  // a tenant's events of one scan, by lane (before the day index)
	partScans       = ":scans:" // a tenant's scan index of one UTC day
	partSubscribers = ":sub:"
	partOp          = ":op:"    // an operational event waiting to be published
	partStats       = ":stats:" // after an endpoint key: one hour's attempt counts and durations
	partKept        = ":ok:"    // one minute's deliveries that succeeded at their first attempt
	partEventMinute = ":evm:"   // one minute's events (by the minute their ids name)
)

// waitingIndex is the status index of deliveries waiting in their scan's lane: shown as
// pending, but not on the queue until the delivery ahead of them is done.
const waitingIndex = "waiting"

func tenantTag(tid string) string { return prefix + "{t:" + tid + "}" }

func tenantKey(tid string) string        { return tenantTag(tid) + ":tenant" }
func tenantsKey() string                 { return prefix + "tenants" }
func tenantAPIKeysKey(tid string) string { return tenantTag(tid) + ":keys" }
func apiKeyKey(kid string) string        { return prefix + "{k:" + kid + "}:key" }

// apiKeyRateKey and endpointRateKey name a key's (or portal session's) and an endpoint's rate
// limits (gcra.lua); their hash tags keep them in their owner's slot. The names are those
// redis_rate gave them, which the limits used before.
const ratePrefix = "rate:"

func apiKeyRateKey(kid string) string        { return ratePrefix + prefix + "{k:" + kid + "}" }
func endpointRateKey(tid, eid string) string { return ratePrefix + endpointKey(tid, eid) + ":rate" }
func endpointKey(tid, eid string) string     { return tenantTag(tid) + partEndpoint + eid }
func endpointsKey(tid string) string         { return tenantTag(tid) + ":eps" }
func subscribersKey(tid, typ string) string  { return tenantTag(tid) + partSubscribers + typ }
func eventKey(tid, evid string) string       { return tenantTag(tid) + partEvent + evid }
func legacyEventKey(tid, evid string) string { return tenantTag(tid) + partLegacyEvent + evid }
func idempotencyKey(tid, k string) string    { return tenantTag(tid) + ":idem:" + k }
func outboxKey(tid string) string            { return tenantTag(tid) + partOutbox }
func usageKey(tid, month string) string      { return tenantTag(tid) + ":usage:" + month }
func recoveryKey(tid, rid string) string     { return tenantTag(tid) + ":rcv:" + rid }
func opKey(tid, opid string) string          { return tenantTag(tid) + partOp + opid }

// statsKey holds one hour (Unix hours) of an endpoint's attempts: counts and a duration histogram.
func statsKey(tid, eid string, hour int64) string {
	return endpointKey(tid, eid) + partStats + strconv.FormatInt(hour, 10)
}

// keptKey holds the deliveries created in one minute (Unix minutes) that succeeded at their first
// attempt, each a field (kept.go): they have no record of their own.
func keptKey(tid string, minute int64) string {
	return tenantTag(tid) + partKept + strconv.FormatInt(minute, 10)
}

// eventMinuteKey holds the events whose ids (UUIDv7) name one minute (Unix minutes), each a field
// (eventrecord.go).
func eventMinuteKey(tid string, minute int64) string {
	return tenantTag(tid) + partEventMinute + strconv.FormatInt(minute, 10)
}

// eventsKey indexes a tenant's events of one type by creation time (the listing and the
// recoveries walk them); scanEventsKey indexes the events of one scan, by its lane.
func eventsKey(tid, typ string) string      { return tenantTag(tid) + ":evts:" + typ }
func scanEventsKey(tid, lane string) string { return tenantTag(tid) + partScan + lane }
func deliveryKey(tid, did string) string    { return tenantTag(tid) + partDelivery + did }
func attemptsKey(tid, did string) string    { return deliveryKey(tid, did) + partAttempts }

// endpointStatusKey indexes an endpoint's deliveries of one status by creation time; each
// delivery is in exactly one of them (or in waitingIndex), so together they list all of it.
// The pending index is also the endpoint's queue: its order is the order of attempts.
func endpointStatusKey(tid, eid, status string) string {
	return endpointKey(tid, eid) + partIndex + ":" + status
}

// formerDeliveriesKey is the index of all of an endpoint's deliveries that earlier versions
// wrote beside the status indexes. Nothing writes or reads it now: TrimIndexes ages its entries
// out like the others' (an emptied sorted set is gone) and DeleteEndpoint deletes it.
func formerDeliveriesKey(tid, eid string) string { return endpointKey(tid, eid) + partIndex }

// deliveryIndexes are an endpoint's status indexes, every delivery in exactly one.
func deliveryIndexes(tid, eid string) []string {
	keys := []string{endpointStatusKey(tid, eid, waitingIndex)}
	for _, st := range DeliveryStatuses {
		keys = append(keys, endpointStatusKey(tid, eid, st))
	}
	return keys
}

// endpointQueueKey is the endpoint's pend hash: the queue entry of each delivery in its
// pending index.
func endpointQueueKey(tid, eid string) string { return endpointKey(tid, eid) + partQueue }

// drainKey holds the number of the drain that holds the endpoint's queue lease.
func drainKey(tid, eid string) string { return endpointKey(tid, eid) + partDrain }

// lanesKey maps each scan lane of an ordered endpoint to its head: the one delivery of the
// scan that is queued, in flight or retrying.
func lanesKey(tid, eid string) string { return endpointKey(tid, eid) + partLanes }

// laneKey lists the deliveries waiting behind a lane's head, in publish order.
func laneKey(tid, eid, lane string) string { return endpointKey(tid, eid) + partLane + lane }

// drainCountKey numbers the drains of an endpoint.
func drainCountKey(tid, eid string) string { return drainKey(tid, eid) + partDrainCount }

// luaKeys defines, for the scripts, the key functions of the keys they find as they run; tag
// is tenantTag's value, which every script receives as an argument.
var luaKeys = `
local function endpointKey(tag, eid) return tag .. '` + partEndpoint + `' .. eid end
local function deliveryKey(tag, did) return tag .. '` + partDelivery + `' .. did end
local function attemptsKey(tag, did) return deliveryKey(tag, did) .. '` + partAttempts + `' end
local function eventKey(tag, evid) return tag .. '` + partEvent + `' .. evid end
local function legacyEventKey(tag, evid) return tag .. '` + partLegacyEvent + `' .. evid end
local function outboxKey(tag) return tag .. '` + partOutbox + `' end
local function statusKey(tag, eid, st) return endpointKey(tag, eid) .. '` + partIndex + `:' .. st end
local function queueKey(tag, eid) return endpointKey(tag, eid) .. '` + partQueue + `' end
local function drainKey(tag, eid) return endpointKey(tag, eid) .. '` + partDrain + `' end
local function drainCountKey(tag, eid) return drainKey(tag, eid) .. '` + partDrainCount + `' end
local function lanesKey(tag, eid) return endpointKey(tag, eid) .. '` + partLanes + `' end
local function laneKey(tag, eid, lane) return endpointKey(tag, eid) .. '` + partLane + `' .. lane end
local function scanEventsKey(tag, lane) return tag .. '` + partScan + `' .. lane end
local function subscribersKey(tag, typ) return tag .. '` + partSubscribers + `' .. typ end
local function opKey(tag, opid) return tag .. '` + partOp + `' .. opid end
local function statsKey(tag, eid, hour) return endpointKey(tag, eid) .. '` + partStats + `' .. hour end
local function scanIndexKey(tag, day) return tag .. '` + partScans + `' .. day end
local function keptKey(tag, minute) return tag .. '` + partKept + `' .. minute end
local function eventMinuteKey(tag, minute) return tag .. '` + partEventMinute + `' .. minute end
local WAITING = '` + waitingIndex + `'
`

// portalSessionKey is one tenant portal session. It has a hash tag of its own: the token names
// the session, not its tenant, and every operation on a session touches this one key.
func portalSessionKey(sid string) string { return prefix + "{ps:" + sid + "}:session" }

// scanIndexKey indexes the events a tenant published on one UTC day (Unix days) by scan: one
// field per scan lane, whose value lists the ids of the scan's events of that day. Events
// stored before this index hold their scan's sorted set (scanEventsKey), read until it expires.
func scanIndexKey(tid string, day int64) string {
	return tenantTag(tid) + partScans + strconv.FormatInt(day, 10)
}
