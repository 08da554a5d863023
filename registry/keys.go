package registry

// Key layout. Every key one operation touches together shares a Redis Cluster hash tag:
// all of a tenant's endpoints, events, deliveries and counters live under {t:<tenantID>},
// an API key under {k:<keyID>}. This file is the only place that spells key names.

const prefix = "wh:"

func tenantTag(tid string) string { return prefix + "{t:" + tid + "}" }

func tenantKey(tid string) string           { return tenantTag(tid) + ":tenant" }
func tenantsKey() string                    { return prefix + "tenants" }
func tenantAPIKeysKey(tid string) string    { return tenantTag(tid) + ":keys" }
func apiKeyKey(kid string) string           { return prefix + "{k:" + kid + "}:key" }
func endpointKey(tid, eid string) string    { return tenantTag(tid) + ":ep:" + eid }
func endpointsKey(tid string) string        { return tenantTag(tid) + ":eps" }
func subscribersKey(tid, typ string) string { return tenantTag(tid) + ":sub:" + typ }
func eventKey(tid, evid string) string      { return tenantTag(tid) + ":evt:" + evid }
func idempotencyKey(tid, k string) string   { return tenantTag(tid) + ":idem:" + k }
func outboxKey(tid string) string           { return tenantTag(tid) + ":outbox" }
func usageKey(tid, month string) string     { return tenantTag(tid) + ":usage:" + month }
func deliveryKey(tid, did string) string    { return tenantTag(tid) + ":dlv:" + did }
func attemptsKey(tid, did string) string    { return tenantTag(tid) + ":dlv:" + did + ":att" }
func endpointDeliveriesKey(tid, eid string) string {
	return tenantTag(tid) + ":ep:" + eid + ":dlv"
}
func endpointStatusKey(tid, eid, status string) string {
	return endpointDeliveriesKey(tid, eid) + ":" + status
}

// endpointQueueKey is the endpoint's pend hash: the queue entry of each delivery in its
// pending index (which is also the endpoint's queue).
func endpointQueueKey(tid, eid string) string { return endpointKey(tid, eid) + ":pend" }

// drainKey holds the number of the drain that holds the endpoint's queue lease; drainKey+":n"
// numbers the drains.
func drainKey(tid, eid string) string { return endpointKey(tid, eid) + ":drain" }
