package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Observer is told of every attempt and of endpoints disabled (for metrics). Optional.
type Observer interface {
	Attempt(outcome string, d time.Duration)
	Disabled(reason string)
	// Deferred is told of a delivery put off because its endpoint was at its in-flight cap.
	Deferred()
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
	// EndpointConcurrency caps the attempts one endpoint may have in flight in this worker;
	// default half of Concurrency (at least 1). An endpoint's drain sends no more at once; a
	// retry over the cap is deferred a few seconds without counting as an attempt.
	EndpointConcurrency int
	// Servers is how many asynq servers share Concurrency in this process; default 1 (the
	// binary's default is 4). One server dequeues tasks one at a time, which leaves workers
	// idle under load; several keep them fed.
	Servers int
	// DrainBudget is how long one drain task works an endpoint's queue before it hands the
	// queue to a successor task; default and most 10s.
	DrainBudget time.Duration
	// TaskCheckInterval is how often an idle worker looks for tasks; default 10ms.
	TaskCheckInterval time.Duration
	// SweepInterval is how often the outbox and orphaned tasks are swept; default 30s.
	SweepInterval time.Duration
	UserAgent     string
	Logger        *slog.Logger
	Observer      Observer
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
		c.TaskCheckInterval = 10 * time.Millisecond
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 30 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "webhookd"
	}
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
	slots  *endpointSlots
	// attempts holds one token per attempt in flight: drains send several deliveries at once,
	// and together with retry tasks they stay within Concurrency.
	attempts chan struct{}
	// stopping is closed when Run begins to shut down: drains stop taking deliveries and hand
	// their queues on.
	stopping chan struct{}
	srvs     []*asynq.Server
	log      *slog.Logger
}

// NewWorker validates cfg and builds the asynq server.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, q: newQueue(cfg.Enqueuer, cfg.Policy, cfg.AttemptTimeout),
		slots: newEndpointSlots(cfg.EndpointConcurrency), attempts: make(chan struct{}, cfg.Concurrency),
		stopping: make(chan struct{})}
	for i := range cfg.Servers {
		// Concurrency split as evenly as it goes: 64 over 3 servers is 22, 21 and 21.
		n := cfg.Concurrency / cfg.Servers
		if i < cfg.Concurrency%cfg.Servers {
			n++
		}
		w.srvs = append(w.srvs, asynq.NewServer(cfg.Redis, asynq.Config{
			Concurrency:              n,
			Queues:                   map[string]int{Queue: 1},
			TaskCheckInterval:        cfg.TaskCheckInterval,
			DelayedTaskCheckInterval: time.Second,
			RetryDelayFunc:           w.retryDelay,
			IsFailure:                IsFailure,
			ShutdownTimeout:          cfg.AttemptTimeout + 5*time.Second,
			Logger:                   asynqLogger{cfg.Logger},
			LogLevel:                 asynq.WarnLevel,
		}))
	}
	return w, nil
}

// retryDelay is the policy's delay stretched to end on a whole second. asynq stores a retry
// time as whole Unix seconds and moves the task as soon as that second begins, so an unrounded
// delay could end up to a second early, sooner than a receiver's Retry-After allows.
func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	return toWholeSecond(w.cfg.Store.Now(), w.cfg.Policy.RetryDelayFunc(n, err, t))
}

// toWholeSecond lengthens d so that now+d falls on a whole second.
func toWholeSecond(now time.Time, d time.Duration) time.Duration {
	at := now.Add(d)
	if rem := at.Sub(at.Truncate(time.Second)); rem > 0 {
		d += time.Second - rem
	}
	return d
}

// Handler returns the task mux, for running tasks without a server (tests).
func (w *Worker) Handler() asynq.Handler {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeFanout, w.handleFanout)
	mux.HandleFunc(TypeDeliver, w.handleDeliver)
	mux.HandleFunc(TypeDrain, w.handleDrain)
	return mux
}

// Run processes tasks and sweeps until ctx ends, then shuts down: it stops taking tasks and
// lets attempts in flight finish within AttemptTimeout.
func (w *Worker) Run(ctx context.Context) error {
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
			return w.cfg.Store.OutboxDone(ctx, p.TenantID, "e:"+p.EventID)
		}
		if err != nil {
			return err
		}
		ev.Type = stored.Type
	}
	drains, err := w.cfg.Store.CreateDeliveries(ctx, ev, nil)
	if registry.CodeOf(err) == registry.CodeNotFound {
		return w.cfg.Store.OutboxDone(ctx, p.TenantID, "e:"+p.EventID)
	}
	if err != nil {
		return err
	}
	if err := w.q.drainAll(ctx, p.TenantID, drains); err != nil {
		return err
	}
	return w.cfg.Store.OutboxDone(ctx, p.TenantID, "e:"+p.EventID)
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

// keys parses the endpoint's signing secrets valid now.
func keys(e *registry.Endpoint, now time.Time) ([]signing.Key, error) {
	secrets := e.SigningSecrets(now)
	out := make([]signing.Key, 0, len(secrets))
	for _, s := range secrets {
		k, err := signing.ParseSecret(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
