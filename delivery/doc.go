// Package delivery turns published events into signed HTTP attempts and decides what each
// attempt means. It imports the registry (state) and signing (Standard Webhooks) and nothing
// else of webhookd's.
//
// # The path of an event
//
// Service.Publish stores the event with one script (registry.Store.PublishEvent). For up to
// 32 subscribed endpoints the same script puts one delivery on each endpoint's queue and
// schedules a drain for each endpoint that has none; a larger fan-out is an outbox entry and a
// fan-out task (handleFanout) that does the same. The API answers 202 once that script ran.
//
// # Drains: where every attempt is made
//
// An endpoint's queue is worked by one drain at a time: an asynq task holding a 6 s lease on
// it, renewed every second (drain.go). A drain takes queued deliveries a batch at a time, sends
// up to WorkerConfig.EndpointConcurrency at once (each also takes one of the worker's
// Concurrency slots), and records each batch of outcomes in one script while it goes on
// sending. It ends in the same atomic step that finds the queue empty, hands the queue to a
// successor task after DrainBudget (so busy endpoints take turns) or when its worker stops,
// and rides out a Redis outage of up to 30 s, recording what it sent once Redis answers.
//
// One attempt (attempt.go) has three phases, the same for a first try, a retry, a manual
// retry, a re-enabled delivery and a test ping: prepare (sign with every valid secret), send
// (Send, through the SSRF-safe client of NewHTTPClient) and judge: Classify reads the answer
// and RetryPolicy.Decide, a pure function of (policy, attempt number, outcome, end time),
// gives the next step: succeeded, retrying at a time (the only place a retry delay is chosen
// and rounded), or failed, plus "disable at once" for a 410. registry.Store.Finish applies
// the steps atomically with the endpoint's failure streak; the streak and the auto-disable
// decision live there (registry.StreakRule), and Finish answers which delivery disabled the
// endpoint and why, which the worker logs and counts as it is (report). Finish also keeps the
// endpoint's health (registry/lua/health.lua): the effective concurrency that 429 and 503
// answers lower, which bounds what the drain sends at its next take, probation, and the
// operational events the batch caused, which the worker publishes right after
// (operational.go; the sweeper publishes those a crash left behind).
//
// # Retries
//
// A delivery left retrying has a retry timer: an outbox entry written by Finish and an asynq
// task (TypeRetry) to run at its nextAttemptAt. When it fires (handleRetry, registry.Store.Due)
// the delivery goes back on its endpoint's queue, ahead of newer deliveries, and its next
// attempt is made by the drain like any other. asynq's own retries are only for tasks that
// could not do their work: a Redis outage is retried after a second without counting.
//
// # Queues and shards
//
// Every task is an asynq task on one of WEBHOOKD_QUEUE_SHARDS queues (shards.go): an
// endpoint's drains and retry timers on the shard its id hashes to, an event's fan-out on its
// event's, a recovery's steps on its recovery's. Each shard is its own Redis Cluster hash slot,
// named so the shards spread over the masters; every worker serves every shard, and those of
// an earlier shard count until they drain.
//
// asynq finds tasks by polling its queues. An idle server here polls once and then waits to
// be woken (wake.go): the Enqueuer of NewEnqueuer publishes a task's queue on a Redis channel
// that every worker process subscribes to (each wakes one of its servers of the queue, which
// wakes the next when it finds a task), asynq's forwarder wakes one when it moves due
// retries to the queue, and a server not woken polls again after IdleWait (1 s). An idle
// process so makes a few dequeue calls a second instead of hundreds, and a new drain starts
// when it is queued, not at the next poll.
//
// # Crash safety
//
// Nothing leaves Redis before its work is done. A delivery leaves its queue only in the
// script that records its outcome; outbox entries stay until their work is queued (fan-outs),
// ends (drains) or fires (retry timers), and every worker sweeps them (sweep.go): every
// SweepInterval for entries older than 30 s, and at once when Redis answers after an outage.
// A worker killed mid-attempt stops renewing its drains' leases; the next delivery queued on
// such an endpoint starts a new drain, and its dead task is requeued by RecoverDeadWorkers
// within about 15 s (asynq.go, the one file that touches asynq's private parts). Attempts made
// but not recorded are made again with the same webhook-id: at least once, never lost.
//
// Errors carried in a Result or returned by Probe are meant to be stored and shown to the
// tenant, so they never contain a URL's path or query or any header value.
package delivery
