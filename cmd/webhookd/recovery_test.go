package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestOutboxSweepDeliversOnce: an event stored but never queued (the process died between the
// registry write and the enqueue) is fanned out by the outbox sweeper and delivered exactly
// once, even with two workers sweeping at the same time.
func TestOutboxSweepDeliversOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_SWEEP_INTERVAL": "100ms"})
	api := st.start(t, "--role", "api")
	tid, key := st.tenant(t)
	rc := newReceiver(t, statusResponder(http.StatusOK))
	ep := api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)

	// The write happened a minute ago, so the entry is past the sweeper's grace period.
	at := time.Now().Add(-time.Minute).UTC()
	id := delivery.NewEventID()
	data := scanData()
	raw, _ := json.Marshal(data)
	body, err := delivery.EventBody(id, registry.EventScanCompleted, at, raw)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.store.PublishEvent(t.Context(), tid, registry.NewEvent{ID: id, Type: registry.EventScanCompleted,
		CreatedAt: at, Body: body})
	if err != nil || stored.Deliveries != 1 {
		t.Fatalf("PublishEvent = %+v, %v; want 1 subscribed endpoint", stored, err)
	}
	if !st.drained(t) {
		t.Fatal("something was queued; the test must start with the event only in the outbox")
	}

	st.start(t, "--role", "worker")
	st.start(t, "--role", "worker")
	api.waitDelivery(t, key, ep.ID, id, registry.DeliverySucceeded)
	waitFor(t, patience, "the outbox to empty", func() bool {
		due, err := st.store.DueOutbox(t.Context(), tid, time.Now().Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(due) == 0
	})
	// A normal publish afterwards is a barrier: once it is delivered and the queues are idle,
	// no sweep can still be fanning the first event out.
	next := api.publish(t, key, registry.EventScanCompleted, scanData())
	api.waitDelivery(t, key, ep.ID, next.ID, registry.DeliverySucceeded)
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got, want := rc.idCounts(), map[string]int{id: 1, next.ID: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("POSTs by webhook-id = %v, want %v", got, want)
	}
	checkSigned(t, rc.hitsFor(id)[0], id, ep.Secret)
	checkBody(t, rc.hitsFor(id)[0].Body, id, registry.EventScanCompleted, data)
}

// TestOrphanedActiveTaskRecovered: a deliver task left in asynq's active list without a lease
// (asynq issues 1144 and 1051) gets an expired lease from the sweep, which asynq's recoverer
// acts on, and is then delivered.
func TestOrphanedActiveTaskRecovered(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	s := newStuckTask(t, st)
	w, taskID, q, ctx := s.w, s.id, s.q, t.Context()
	if err := st.rdb.ZScore(ctx, q+"lease", taskID).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("orphan has a lease before the sweep (%v)", err)
	}

	n, err := w.RecoverOrphans(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RecoverOrphans = %d, %v; want 1", n, err)
	}
	lease, err := st.rdb.ZScore(ctx, q+"lease", taskID).Result()
	if err != nil {
		t.Fatalf("no lease after the sweep: %v", err)
	}
	// asynq's recoverer retries tasks whose lease expired at least 30s ago.
	if cutoff := time.Now().Add(-30 * time.Second).Unix(); int64(lease) > cutoff {
		t.Errorf("lease expires at %d, want at or before the recoverer's cutoff %d", int64(lease), cutoff)
	}
	if n, err := w.RecoverOrphans(ctx); err != nil || n != 0 {
		t.Errorf("second RecoverOrphans = %d, %v; want 0 (nothing left to repair)", n, err)
	}

	// A worker's recoverer runs when it starts: the orphan is retried and delivered.
	s.deliveredOnce(t, st)
}

// worker builds a delivery.Worker on the stack without running it.
func (st *stack) worker(tb testing.TB) *delivery.Worker {
	tb.Helper()
	client, err := delivery.NewHTTPClient(delivery.ClientConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	w, err := delivery.NewWorker(delivery.WorkerConfig{Redis: st.asynqOpt,
		RedisClient: st.rdb, Store: st.store, Enqueuer: asynq.NewClientFromRedisClient(st.rdb), Client: client})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// queuedDrainTask returns the id of the one pending task, a drain (no worker is running).
func (st *stack) queuedDrainTask(tb testing.TB) string {
	tb.Helper()
	// A one-endpoint event is queued on its endpoint at publish, and the endpoint's drain task
	// is already on the task queue.
	dl, err := asynq.NewInspectorFromRedisClient(st.rdb).ListPendingTasks(delivery.Queue)
	if err != nil || len(dl) != 1 || dl[0].Type != delivery.TypeDrain {
		tb.Fatalf("pending tasks = %v, %v; want the endpoint's drain", dl, err)
	}
	return dl[0].ID
}

// TestShutdownFinishesAttemptInFlight: cancelling serve while a receiver holds an attempt
// open lets the attempt finish and be recorded before serve returns nil.
func TestShutdownFinishesAttemptInFlight(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	tid, key := st.tenant(t)
	const hold = time.Second
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(hold):
			w.WriteHeader(http.StatusOK)
		case <-r.Context().Done():
		}
	})
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	waitFor(t, patience, "the attempt to reach the receiver", func() bool { return rc.count() == 1 })
	if err := svc.stop(); err != nil {
		t.Fatalf("serve returned %v after cancel, want nil", err)
	}
	d, err := st.store.Delivery(t.Context(), tid, ep.ID, registry.DeliveryID(ev.ID, ep.ID), true)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != registry.DeliverySucceeded || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusOK {
		t.Fatalf("after shutdown the delivery is %s with attempts %+v, want succeeded with one 200", d.Status, d.Attempts)
	}
	if got := time.Duration(d.Attempts[0].DurationMs) * time.Millisecond; got < hold-50*time.Millisecond {
		t.Errorf("recorded attempt took %s, want about the receiver's %s hold", got, hold)
	}
	if got := rc.count(); got != 1 {
		t.Errorf("receiver got %d attempts, want 1", got)
	}
}

// stuckTask is the drain task of one event's endpoint moved into asynq's active list by hand,
// as a dequeue leaves it, with no worker running it: what a dead or confused worker leaves
// behind.
type stuckTask struct {
	api *service
	key string
	rc  *receiver
	ep  endpointView
	ev  publishedView
	w   *delivery.Worker // built on the stack, not running
	id  string           // the asynq task id
	q   string           // the queue's asynq key prefix
}

func newStuckTask(t *testing.T, st *stack) *stuckTask {
	t.Helper()
	s := &stuckTask{api: st.start(t, "--role", "api"), q: "asynq:{" + delivery.Queue + "}:"}
	_, s.key = st.tenant(t)
	s.rc = newReceiver(t, statusResponder(http.StatusOK))
	s.ep = s.api.createEndpoint(t, s.key, s.rc.URL, []string{registry.EventScanCompleted}, nil)
	s.ev = s.api.publish(t, s.key, registry.EventScanCompleted, scanData())
	s.w = st.worker(t)
	s.id = st.queuedDrainTask(t)
	ctx, q, taskID := t.Context(), s.q, s.id
	if err := st.rdb.LMove(ctx, q+"pending", q+"active", "RIGHT", "LEFT").Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.rdb.HSet(ctx, q+"t:"+taskID, "state", "active").Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// deliveredOnce starts a worker and waits for the event to be delivered, exactly once.
func (s *stuckTask) deliveredOnce(t *testing.T, st *stack) {
	t.Helper()
	st.start(t, "--role", "worker")
	s.api.waitDelivery(t, s.key, s.ep.ID, s.ev.ID, registry.DeliverySucceeded)
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got := s.rc.idCounts(); !reflect.DeepEqual(got, map[string]int{s.ev.ID: 1}) {
		t.Errorf("POSTs by webhook-id = %v, want the event once", got)
	}
}
