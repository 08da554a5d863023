package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Observer is told of every attempt and of endpoints disabled (for metrics). Optional.
type Observer interface {
	Attempt(outcome string, d time.Duration)
	Disabled(reason string)
	// Recovered is told of a recovery that is done, with how many deliveries it queued again
	// (requeued) and made (created).
	Recovered(requeued, created int)
	// Concurrency is told of an endpoint's effective concurrency after a batch, and its ceiling.
	Concurrency(endpointID string, effective, max int)
}

// WorkerConfig configures the delivery workers. Zero values mean defaults.
type WorkerConfig struct {
	Redis asynq.RedisConnOpt
	// RedisClient is the same Redis, for the sweeps of asynq tasks left active without a lease
	// or by a dead worker process.
	RedisClient redis.UniversalClient
	Store       Store
	Enqueuer    Enqueuer
	Client      *http.Client
	Policy      RetryPolicy
	// AttemptTimeout bounds one HTTP attempt; default 15s.
	AttemptTimeout time.Duration
	// DisableAfter failures in a row (default 15), the first at least DisableMinWindow old
	// (default 1h; negative means 0), disable an endpoint.
	DisableAfter     int
	DisableMinWindow time.Duration
	// Concurrency is how many attempts run at once; default 64.
	Concurrency int
	// EndpointConcurrency caps the attempts one endpoint may have in flight: its drain sends no
	// more at once. Default half of Concurrency (at least 1), so that a hanging receiver holds
	// half the worker at most.
	EndpointConcurrency int
	// Servers is how many asynq servers share Concurrency in this process; default 1 (the
	// binary's default is 4). One server dequeues tasks one at a time, which leaves workers
	// idle under load; several keep them fed. The queues are spread over the servers.
	Servers int
	// QueueShards is how many queues tasks are spread over (shards.go); default 1. Every
	// process that enqueues (API and worker) must use the same number; changing it is safe.
	QueueShards int
	// DrainBudget is how long one drain task works an endpoint's queue before it hands the
	// queue to a successor task; default and most 10s.
	DrainBudget time.Duration
	// TaskCheckInterval is how long an asynq server pauses after a round of dequeues that found
	// nothing; default 1ms. The next round then waits to be woken (wake.go), so the pause costs
	// no polling, and a short one keeps a task queued during it from waiting it out.
	TaskCheckInterval time.Duration
	// IdleWait is the longest an idle server waits to be woken before it polls its queues
	// again; default 1s.
	IdleWait time.Duration
	// SweepInterval is how often the outbox and orphaned tasks are swept; default 30s.
	SweepInterval time.Duration
	UserAgent     string
	Logger        *slog.Logger
	Observer      Observer
	// Clock times drain budgets and lease renewals (which Redis measures in real time);
	// time.Now when nil. Recorded times come from Store.Now.
	Clock func() time.Time

	// Streak is the auto-disable rule, from DisableAfter and DisableMinWindow.
	Streak registry.StreakRule
}

func (c *WorkerConfig) setDefaults() error {
	if c.Redis == nil || c.RedisClient == nil || c.Store == nil || c.Enqueuer == nil || c.Client == nil {
		return errors.New("delivery: Redis, RedisClient, Store, Enqueuer and Client are required")
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	c.Policy = c.Policy.WithDefaults()
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 15 * time.Second
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 15
	}
	if c.DisableMinWindow == 0 {
		c.DisableMinWindow = time.Hour
	} else if c.DisableMinWindow < 0 {
		c.DisableMinWindow = 0
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Servers <= 0 {
		c.Servers = 1
	}
	c.Servers = min(c.Servers, c.Concurrency)
	if c.EndpointConcurrency <= 0 {
		c.EndpointConcurrency = max(1, c.Concurrency/2)
	}
	if c.DrainBudget <= 0 || c.DrainBudget > drainBudget {
		c.DrainBudget = drainBudget // the drain task's timeout allows no more
	}
	if c.TaskCheckInterval <= 0 {
		c.TaskCheckInterval = time.Millisecond
	}
	if c.IdleWait <= 0 {
		c.IdleWait = time.Second
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 30 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "webhookd"
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	c.Streak = registry.StreakRule{Threshold: c.DisableAfter, MinWindow: c.DisableMinWindow}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Worker runs the asynq server that fans events out and makes delivery attempts.
type Worker struct {
	sweeps atomic.Int64
	cfg    WorkerConfig
	q      queue
	ops    publisher
	// attempts holds one token per attempt in flight: drains send several deliveries at once,
	// and together with retry tasks they stay within Concurrency.
	attempts chan struct{}
	// stopping is closed when Run begins to shut down: drains stop taking deliveries and hand
	// their queues on.
	stopping chan struct{}
	// goroutines runs the drains' sends and recordings.
	goroutines *goroutines
	srvs       []*asynq.Server
	// idlers are the servers' idle waits, by queue (wake.go), from Run.
	idlers atomic.Pointer[idlers]
	// queues is every queue served: the shards, then those of an earlier shard count that
	// still held tasks when Run began.
	queues atomic.Pointer[[]string]
	log    *slog.Logger
}

// NewWorker validates cfg and builds the asynq server.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	shards := NewShards(cfg.QueueShards)
	q := newQueue(cfg.Enqueuer, shards, cfg.AttemptTimeout)
	w := &Worker{cfg: cfg, log: cfg.Logger, q: q, ops: publisher{store: cfg.Store, q: q, log: cfg.Logger},
		attempts: make(chan struct{}, cfg.Concurrency), stopping: make(chan struct{})}
	w.goroutines = newGoroutines(cfg.Concurrency, w.stopping)
	names := shards.Names()
	w.queues.Store(&names)
	return w, nil
}

// servers builds the asynq servers, each serving its share of the queues with its share of
// Concurrency (as evenly as it goes: 64 over 3 servers is 22, 21 and 21). Equal weights make
// asynq pick a server's queues in a fresh random order for every dequeue: every shard is
// served alike.
func (w *Worker) servers(queues []string) []*asynq.Server {
	cfg := w.cfg
	var srvs []*asynq.Server
	byQueue := idlers{}
	var all []*idler
	for i, qs := range spread(queues, cfg.Servers) {
		n := cfg.Concurrency / cfg.Servers
		if i < cfg.Concurrency%cfg.Servers {
			n++
		}
		idle := newIdler(len(qs), cfg.IdleWait, w.stopping)
		all = append(all, idle)
		for q := range qs {
			byQueue[q] = append(byQueue[q], idle)
		}
		srvs = append(srvs, asynq.NewServer(idleConnOpt{cfg.Redis, idle}, asynq.Config{
			Concurrency:              n,
			Queues:                   qs,
			TaskCheckInterval:        cfg.TaskCheckInterval,
			DelayedTaskCheckInterval: time.Second,
			RetryDelayFunc:           cfg.Policy.RetryDelayFunc,
			IsFailure:                IsFailure,
			ShutdownTimeout:          cfg.AttemptTimeout + 5*time.Second,
			Logger:                   asynqLogger{cfg.Logger},
			LogLevel:                 asynq.WarnLevel,
		}))
	}
	for _, i := range all {
		i.peers = byQueue
	}
	w.idlers.Store(&byQueue)
	return srvs
}

// served is every queue this worker serves.
func (w *Worker) served() []string { return *w.queues.Load() }

// Handler returns the task mux, for running tasks without a server (tests).
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeFanout, w.handleFanout)
	mux.HandleFunc(TypeDrain, w.handleDrain)
	mux.HandleFunc(TypeRetry, w.handleRetry)
	mux.HandleFunc(typeLegacyDeliver, w.handleRetry)
	mux.HandleFunc(TypeRecover, w.handleRecover)
	return mux
}

// Run processes tasks and sweeps until ctx ends, then shuts down: it stops taking tasks and
// lets attempts in flight finish within AttemptTimeout.
func (w *Worker) Run(ctx context.Context) error {
	queues, err := servedQueues(w.cfg.RedisClient, NewShards(w.cfg.QueueShards))
	if err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	if len(queues) > len(w.served()) {
		w.log.InfoContext(ctx, "serving the queues of an earlier shard count until they drain",
			"queues", queues[len(w.served()):])
	}
	w.queues.Store(&queues)
	w.srvs = w.servers(queues)
	wakes := w.cfg.RedisClient.Subscribe(ctx, wakeChannel)
	if _, err := wakes.Receive(ctx); err != nil {
		_ = wakes.Close()
		return fmt.Errorf("start workers: subscribe to wakes: %w", err)
	}
	listening := make(chan struct{})
	go func() { defer close(listening); w.idlers.Load().listen(wakes) }()
	defer func() { _ = wakes.Close(); <-listening }()
	h := w.Handler()
	for i, srv := range w.srvs {
		if err := srv.Start(h); err != nil {
			for _, started := range w.srvs[:i] {
				started.Shutdown()
			}
			return fmt.Errorf("start workers: %w", err)
		}
	}
	sweepDone := make(chan struct{})
	go func() { defer close(sweepDone); w.sweepLoop(ctx) }()
	<-ctx.Done()
	close(w.stopping)
	// Shut the servers down together: each waits up to its timeout for its attempts.
	var wg sync.WaitGroup
	for _, srv := range w.srvs {
		wg.Go(srv.Shutdown)
	}
	wg.Wait()
	<-sweepDone
	return nil
}

func (w *Worker) handleFanout(ctx context.Context, t *asynq.Task) error {
	var p fanoutPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad fan-out payload: %w: %w", err, asynq.SkipRetry)
	}
	ev := &registry.Event{ID: p.EventID, TenantID: p.TenantID, Type: p.Type}
	if ev.Type == "" { // an outbox sweep does not know the type
		stored, err := w.cfg.Store.Event(ctx, p.TenantID, p.EventID)
		if registry.CodeOf(err) == registry.CodeNotFound {
			return w.cfg.Store.OutboxDone(ctx, p.TenantID, registry.FanoutEntry(p.EventID))
		}
		if err != nil {
			return err
		}
		ev.Type = stored.Type
	}
	drains, err := w.cfg.Store.CreateDeliveries(ctx, ev, nil)
	if registry.CodeOf(err) == registry.CodeNotFound {
		return w.cfg.Store.OutboxDone(ctx, p.TenantID, registry.FanoutEntry(p.EventID))
	}
	if err != nil {
		return err
	}
	if err := w.q.drainAll(ctx, p.TenantID, drains); err != nil {
		return err
	}
	return w.cfg.Store.OutboxDone(ctx, p.TenantID, registry.FanoutEntry(p.EventID))
}

// handleRecover runs one step of a recovery and queues the next, or logs the recovery's end.
func (w *Worker) handleRecover(ctx context.Context, t *asynq.Task) error {
	var p recoverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad recover payload: %w: %w", err, asynq.SkipRetry)
	}
	st, err := w.cfg.Store.RecoverStep(ctx, p.TenantID, p.RecoveryID)
	if err != nil {
		return asOutage(err)
	}
	if err := w.q.drainAll(ctx, p.TenantID, st.Drains); err != nil {
		w.log.WarnContext(ctx, "queueing a drain failed; the outbox sweeper will", "tenantId", p.TenantID,
			"error", err.Error())
	}
	if !st.Done {
		return asOutage(w.q.recover(ctx, p.TenantID, p.RecoveryID, strconv.Itoa(st.Steps)))
	}
	if st.Finished == nil {
		return nil
	}
	// Claimed once: a step retried after its reply was lost, or a second chain, finds the
	// recovery finished too.
	won, err := w.cfg.Store.ReportRecovery(ctx, p.TenantID, p.RecoveryID)
	if err != nil || !won {
		return asOutage(err)
	}
	r := st.Finished
	w.log.InfoContext(ctx, "recovery finished", "tenantId", p.TenantID, "endpointId", r.WebhookID,
		"recoveryId", r.ID, "requeued", r.Requeued, "created", r.Created)
	if w.cfg.Observer != nil {
		w.cfg.Observer.Recovered(r.Requeued, r.Created)
	}
	return nil
}

// handleRetry fires a retry timer: the delivery goes back on its endpoint's queue, and its
// drain is scheduled when none runs.
func (w *Worker) handleRetry(ctx context.Context, t *asynq.Task) error {
	var p retryPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("bad retry payload: %w: %w", err, asynq.SkipRetry)
	}
	drains, err := w.cfg.Store.Due(ctx, p.TenantID, p.retry())
	if err != nil {
		return asOutage(err)
	}
	return asOutage(w.q.drainAll(ctx, p.TenantID, drains))
}

// takeSlot waits for one of the worker's attempt tokens; false when ctx ends first.
func (w *Worker) takeSlot(ctx context.Context) bool {
	select {
	case w.attempts <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *Worker) freeSlot() { <-w.attempts }

// asynqLogger sends asynq's own log lines to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}
