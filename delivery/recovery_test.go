package delivery

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestOutboxSweepDeliversOnce: an event stored but never queued (the process died between the
// registry write and the enqueue) is fanned out by the outbox sweeper and delivered exactly
// once, even with two workers sweeping at the same time.
func TestOutboxSweepDeliversOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	rc, ep := st.receiver(t, deliverytest.Status(http.StatusOK), registry.EventScanCompleted)

	// The write happened a minute ago, so the entry is past the sweeper's grace period.
	at := time.Now().Add(-time.Minute).UTC()
	id := NewEventID()
	data := scanData()
	raw, _ := json.Marshal(data)
	body, err := EventBody(id, registry.EventScanCompleted, at, raw)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.store.PublishEvent(t.Context(), st.tid, registry.NewEvent{ID: id,
		Type: registry.EventScanCompleted, CreatedAt: at, Body: body})
	if err != nil || stored.Deliveries != 1 {
		t.Fatalf("PublishEvent = %+v, %v; want 1 subscribed endpoint", stored, err)
	}
	if !st.drained(t) {
		t.Fatal("something was queued; the test must start with the event only in the outbox")
	}

	st.worker(t, WorkerConfig{SweepInterval: 100 * time.Millisecond})
	st.worker(t, WorkerConfig{SweepInterval: 100 * time.Millisecond})
	st.waitStatus(t, ep.ID, id, registry.DeliverySucceeded)
	eventually(t, "the outbox to empty", func() bool {
		due, err := st.store.DueOutbox(t.Context(), st.tid, time.Now().Add(time.Hour), 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(due) == 0
	})
	// A normal publish afterwards is a barrier: once it is delivered and the queues are idle,
	// no sweep can still be fanning the first event out.
	next := st.publish(t, registry.EventScanCompleted, nil)
	st.waitStatus(t, ep.ID, next.ID, registry.DeliverySucceeded)
	st.waitDrained(t)
	if got, want := rc.IDCounts(), map[string]int{id: 1, next.ID: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("POSTs by webhook-id = %v, want %v", got, want)
	}
	deliverytest.CheckSigned(t, rc.HitsFor(id)[0], id, ep.Secret)
	deliverytest.CheckBody(t, rc.HitsFor(id)[0].Body, id, registry.EventScanCompleted, data)
}

// TestShutdownFinishesAttemptInFlight: cancelling Worker.Run's context while a receiver holds
// an attempt open lets the attempt finish and be recorded before Run returns nil.
func TestShutdownFinishesAttemptInFlight(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	stop := st.worker(t, WorkerConfig{})
	const hold = time.Second
	rc, ep := st.receiver(t, slowOK(hold), registry.EventScanCompleted)
	ev := st.publish(t, registry.EventScanCompleted, nil)
	eventually(t, "the attempt to reach the receiver", func() bool { return rc.Count() == 1 })
	if err := stop(); err != nil {
		t.Fatalf("Worker.Run returned %v after cancel, want nil", err)
	}
	d := st.delivery(t, ep.ID, ev.ID)
	if d.Status != registry.DeliverySucceeded || len(d.Attempts) != 1 || d.Attempts[0].StatusCode != http.StatusOK {
		t.Fatalf("after shutdown the delivery is %s with attempts %+v, want succeeded with one 200", d.Status, d.Attempts)
	}
	if got := time.Duration(d.Attempts[0].DurationMs) * time.Millisecond; got < hold-50*time.Millisecond {
		t.Errorf("recorded attempt took %s, want about the receiver's %s hold", got, hold)
	}
	if got := rc.Count(); got != 1 {
		t.Errorf("receiver got %d attempts, want 1", got)
	}
}

// stuckTask is the drain task of one event's endpoint moved into asynq's active list by hand,
// as a dequeue leaves it, with no worker running it: what a dead or confused worker leaves
// behind.
type stuckTask struct {
	st *stack
	rc *deliverytest.Receiver
	ep *registry.Endpoint
	ev *Published
	w  *Worker // built on the stack, not running
	id string  // the asynq task id
	q  string  // its queue
}

func newStuckTask(t *testing.T) *stuckTask {
	t.Helper()
	st := newStack(t)
	s := &stuckTask{st: st}
	s.rc, s.ep = st.receiver(t, deliverytest.Status(http.StatusOK), registry.EventScanCompleted)
	s.ev = st.publish(t, registry.EventScanCompleted, nil)
	s.w = st.newWorker(t, WorkerConfig{})
	// A one-endpoint event is queued on its endpoint at publish, and the endpoint's drain task
	// is already on the task queue.
	s.q = st.queue(s.ep.ID)
	pending, err := asynq.NewInspectorFromRedisClient(st.rdb).ListPendingTasks(s.q)
	if err != nil || len(pending) != 1 || pending[0].Type != TypeDrain {
		t.Fatalf("pending tasks = %v, %v; want the endpoint's drain", pending, err)
	}
	s.id = pending[0].ID
	ctx := t.Context()
	if err := st.rdb.LMove(ctx, asynqKey(s.q, "pending"), asynqKey(s.q, "active"), "RIGHT", "LEFT").Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.rdb.HSet(ctx, asynqKey(s.q, "t:"+s.id), "state", "active").Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// deliveredOnce starts a worker and waits for the event to be delivered, exactly once.
func (s *stuckTask) deliveredOnce(t *testing.T) {
	t.Helper()
	s.st.worker(t, WorkerConfig{})
	s.st.deliveredOnce(t, s.rc, s.ep.ID, s.ev.ID)
}

// TestOrphanedActiveTaskRecovered: a drain task left in asynq's active list without a lease
// (asynq issues 1144 and 1051) gets an expired lease from the sweep, which asynq's recoverer
// acts on, and is then delivered.
func TestOrphanedActiveTaskRecovered(t *testing.T) {
	t.Parallel()
	s := newStuckTask(t)
	st, w, taskID, ctx, q := s.st, s.w, s.id, t.Context(), s.q
	leases := asynqKey(q, "lease")
	if err := st.rdb.ZScore(ctx, leases, taskID).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("orphan has a lease before the sweep (%v)", err)
	}

	n, err := w.RecoverOrphans(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RecoverOrphans = %d, %v; want 1", n, err)
	}
	lease, err := st.rdb.ZScore(ctx, leases, taskID).Result()
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
	s.deliveredOnce(t)
}

// TestDeadWorkerTaskRequeued: the sweep requeues an active task only when its lease has gone
// unextended for 15s and no live asynq server lists it; then the task is pending again, runs
// and is delivered once.
func TestDeadWorkerTaskRequeued(t *testing.T) {
	t.Parallel()
	s := newStuckTask(t)
	st, w, taskID, ctx, q := s.st, s.w, s.id, t.Context(), s.q
	leases := asynqKey(q, "lease")
	// As asynq's dequeue leaves it (newStuckTask), with a lease 30s ahead.
	setLease := func(in time.Duration) {
		t.Helper()
		if err := st.rdb.ZAdd(ctx, leases, redis.Z{Score: float64(time.Now().Add(in).Unix()), Member: taskID}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	requeue := func(want int) {
		t.Helper()
		if n, err := w.RecoverDeadWorkers(ctx); err != nil || n != want {
			t.Fatalf("RecoverDeadWorkers = %d, %v; want %d", n, err, want)
		}
	}
	setLease(30 * time.Second)
	requeue(0) // just dequeued: its server has not listed it yet

	// Unextended for 20s, but a live server lists it (a heartbeat whose lease extension failed).
	setLease(10 * time.Second)
	wkey := asynqWorkers + ":{test-host:1:" + taskID + "}"
	if err := st.rdb.HSet(ctx, wkey, taskID, "{}").Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.rdb.Expire(ctx, wkey, 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.rdb.ZAdd(ctx, asynqWorkers, redis.Z{Score: float64(time.Now().Add(10 * time.Second).Unix()), Member: wkey}).Err(); err != nil {
		t.Fatal(err)
	}
	requeue(0)

	// The server's worker hash expires (no heartbeat for 10s): the task is requeued, once.
	if err := st.rdb.Del(ctx, wkey).Err(); err != nil {
		t.Fatal(err)
	}
	requeue(1)
	requeue(0)
	if got, err := st.rdb.LRange(ctx, asynqKey(q, "pending"), 0, -1).Result(); err != nil || !reflect.DeepEqual(got, []string{taskID}) {
		t.Fatalf("pending = %v, %v; want the task", got, err)
	}
	if n, err := st.rdb.LLen(ctx, asynqKey(q, "active")).Result(); err != nil || n != 0 {
		t.Fatalf("active holds %d tasks (%v), want none", n, err)
	}
	if err := st.rdb.ZScore(ctx, leases, taskID).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the requeued task still has a lease (%v)", err)
	}
	if state, err := st.rdb.HGet(ctx, asynqKey(q, "t:"+taskID), "state").Result(); err != nil || state != "pending" {
		t.Fatalf("task state = %q, %v; want pending", state, err)
	}

	s.deliveredOnce(t)
}

// TestSlowLiveWorkerKeepsTask: an attempt held by the receiver for longer than the sweep's
// staleness bound (15s), with a second worker sweeping every 100ms, is neither requeued nor
// repeated: a live worker's heartbeat keeps its lease fresh.
func TestSlowLiveWorkerKeepsTask(t *testing.T) {
	if testing.Short() {
		t.Skip("holds an attempt for 20 s")
	}
	t.Parallel()
	st := newStack(t)
	const hold = 20 * time.Second
	rc, ep := st.receiver(t, slowOK(hold), registry.EventScanCompleted)
	logs := &logBuffer{}
	cfg := WorkerConfig{AttemptTimeout: time.Minute, SweepInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	st.worker(t, cfg)
	st.worker(t, cfg)
	ev := st.publish(t, registry.EventScanCompleted, nil)
	eventuallyWithin(t, hold+time.Minute, "the held delivery to succeed", func() bool {
		d := st.delivery(t, ep.ID, ev.ID)
		return d != nil && d.Status == registry.DeliverySucceeded
	})
	st.waitDrained(t)
	if got := rc.IDCounts(); !reflect.DeepEqual(got, map[string]int{ev.ID: 1}) {
		t.Errorf("POSTs by webhook-id = %v, want the event once", got)
	}
	if lines := logs.lines(t, "requeued tasks of dead workers"); len(lines) != 0 {
		t.Errorf("the sweep requeued tasks of a live worker: %v", lines)
	}
}
