// Package registry is webhookd's domain and its Redis store: tenants, API keys, endpoints,
// events and deliveries, the coded error type every package returns, and the Lua scripts
// that move a delivery through its states atomically. It imports nothing of webhookd's.
//
// # Key layout
//
// Every key of a tenant carries the hash tag {t:<tenantID>}, so each operation (a script, a
// transaction) touches one Redis Cluster slot; an API key lives under {k:<keyID>}, a portal
// session under {ps:<sessionID>}. One script reaches across: a publish that carries its key's
// check (keycheck.go) reads the key's record and counts its limit, which only a single Redis
// allows, so a cluster's publishes carry none. keys.go is
// the only file that spells key names, for Go and, through luaKeys, for the scripts.
//
//	wh:{t:T}:tenant              tenant (JSON)          wh:{k:K}:key        API key (JSON)
//	wh:{t:T}:keys                its keys (set)         wh:tenants          every tenant (set)
//	rate:wh:{k:K}                an API key's rate limit (GCRA, lua/gcra.lua)
//	wh:{ps:S}:session            tenant portal session (JSON: the token's hash, its key, expiry)
//	wh:{t:T}:eps                 endpoints by creation (zset)
//	wh:{t:T}:ep:E                endpoint (hash): url, events, secrets, status, failure streak, health
//	rate:wh:{t:T}:ep:E:rate      its rateLimitPerSecond (GCRA, lua/gcra.lua)
//	wh:{t:T}:ep:E:stats:MINUTE     its attempts of one hour: counts and a duration histogram (hash, 7 days)
//	wh:{t:T}:sub:TYPE            endpoints subscribed to TYPE (set)
//	wh:{t:T}:evm:MIN             events whose ids (UUIDv7) name that minute (Unix minutes): the id's
//	                             16 bytes -> compact record (eventrecord.go; hash, retention after
//	                             the minute)
//	wh:{t:T}:ev:V                event (string) whose id is no UUIDv7, or stored by an earlier
//	                             version: type|at|lane|exclude|body (the id is the key's)
//	wh:{t:T}:evt:V               event as earlier versions stored it (hash), read until it expires
//	wh:{t:T}:evts:TYPE           the tenant's events of TYPE by creation (zset; a member is the id's 16
//	                             bytes, or the id as text; eventlog.go): the event log, recoveries
//	wh:{t:T}:scans:DAY           the day's events by scan (hash: the lane's 10 bytes -> the ids' 16
//	                             bytes each, or lane -> ids as text; scanindex.go), scanId lookups
//	wh:{t:T}:scan:LANE           one scan's events (zset), written before the day index; read until it expires
//	wh:{t:T}:idem:KEY            idempotency record: head, request hash, evt_a=n,... (string, 24 h)
//	wh:{t:T}:usage:YYYY-MM       events published this month (counter)
//	wh:{t:T}:outbox              work accepted, maybe not yet on the task queue (zset, outbox.go)
//	wh:{t:T}:op:O                an operational event waiting to be published (hash)
//	wh:{t:T}:rcv:R               a recovery: window, cursor, counts, status (hash)
//	wh:{t:T}:dlv:D               delivery record (hash), created by its first attempt's outcome,
//	                             which it keeps (attempt.go)
//	wh:{t:T}:dlv:D:att           its attempts after the first (list, newest 100)
//	wh:{t:T}:ok:MIN              deliveries created that minute (Unix minutes) that succeeded at their
//	                             first attempt, without a record: the delivery id's 16 bytes ->
//	                             event, type, end and first attempt (hash, retention after the
//	                             minute; kept.go); a manual retry gives one its record back
//	wh:{t:T}:ep:E:dlv:STATUS     the endpoint's deliveries of one status by creation (zset); each
//	                             delivery is in one, so listing them all merges them; :pending
//	                             is also the endpoint's queue
//	wh:{t:T}:ep:E:pend           queue entry of each queued delivery (hash, QueueEntry)
//	wh:{t:T}:ep:E:dlv:waiting    deliveries waiting in their scan's lane (zset; shown as pending)
//	wh:{t:T}:ep:E:lanes          an ordered endpoint's scan lanes: lane -> its head delivery (hash)
//	wh:{t:T}:ep:E:lane:L         the deliveries waiting behind lane L's head, in publish order (list)
//	wh:{t:T}:ep:E:drain          number of the drain holding the queue's lease (string, 6 s TTL)
//	wh:{t:T}:ep:E:drain:n        the last drain's number (counter)
//
// The task queues are asynq's (asynq:{webhookd}:..., or one hash slot per shard:
// asynq:{webhookd-3of16-20}:...), outside this package: see delivery/shards.go.
//
// # A delivery's states
//
//	publish --+--> pending --(its drain attempts it; Finish)--+--> succeeded  (2xx)
//	          |      ^  ^                                     +--> failed     (budget spent, event expired)
//	          |      |  |                                     +--> retrying   (failed, budget left)
//	          |      |  +------ its retry timer fires (Due) ---------+
//	          |      +--------- manual retry or re-enable: a new run (from any state but pending)
//	          +--> held          (the endpoint is disabled; disabling holds every pending and retrying one)
//	          +--> pending, waiting in its scan's lane (ordered endpoint) --(the head is done)--> pending
//
// Every attempt is made by the endpoint's drain, which takes queued deliveries (Take) and
// records their outcomes a batch at a time (Finish, lua/finish.lua): the next status the
// policy decided (succeeded, retrying with its retry timer in the outbox, failed), the
// endpoint's failure streak, and auto-disable, which holds every pending and retrying
// delivery of the endpoint in the same step. A delivery whose endpoint is disabled is held;
// re-enabling it (EnableEndpoint) or a manual retry (RequeueDelivery) queues it in a new run:
// a new generation, which makes every drain, timer and outcome of an older run stale.
package registry
