package delivery

import (
	"context"
	"net/http"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
)

// TestProbationFailureHoldsTheRest: an endpoint re-enabled with several held deliveries gets
// one attempt at a time; when that attempt fails the endpoint is disabled again at once
// (probation_failed), and the other deliveries go back to held without an attempt: a disabled
// endpoint gets none.
func TestProbationFailureHoldsTheRest(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{DisableAfter: 100, DisableMinWindow: -1})
	rc, ep := st.receiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}, registry.EventScanCompleted)
	if _, err := st.svc.Disable(t.Context(), st.tid, ep.ID); err != nil {
		t.Fatal(err)
	}
	var events []string
	for range 3 {
		events = append(events, st.publish(t, registry.EventScanCompleted, nil).ID)
	}
	for _, evid := range events {
		st.waitStatus(t, ep.ID, evid, registry.DeliveryHeld)
	}
	if _, _, err := st.svc.Enable(t.Context(), st.tid, ep.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the endpoint to fail its probation", func() bool {
		e := st.endpointNow(t, ep.ID)
		return e.DisabledReason != nil && *e.DisabledReason == registry.ReasonProbationFailed
	})
	st.waitDrained(t)
	attempts := 0
	for _, evid := range events {
		attempts += st.waitStatus(t, ep.ID, evid, registry.DeliveryHeld).AttemptCount
	}
	if got := rc.Count(); got != 1 || attempts != 1 {
		t.Errorf("the receiver got %d attempts and the deliveries count %d, want 1: the failed probation attempt alone",
			got, attempts)
	}
}

// TestEnableAnswersTheStateItLeft: Enable answers the endpoint as the re-enable left it, on
// probation with an effective concurrency of 1, even when the first attempt it queues has
// already succeeded (and ended the probation) by the time Enable returns. The service's
// enqueuer here waits for that success before it returns, as a fast worker can.
func TestEnableAnswersTheStateItLeft(t *testing.T) {
	t.Parallel()
	st := newStack(t)
	st.worker(t, WorkerConfig{})
	_, ep := st.receiver(t, deliverytest.Status(http.StatusOK), registry.EventScanCompleted)
	if _, err := st.svc.Disable(t.Context(), st.tid, ep.ID); err != nil {
		t.Fatal(err)
	}
	evid := st.publish(t, registry.EventScanCompleted, nil).ID
	st.waitStatus(t, ep.ID, evid, registry.DeliveryHeld)
	svc, err := NewService(ServiceConfig{Store: st.store, QueueShards: st.shards,
		Enqueuer: afterEnqueue{NewEnqueuer(st.rdb), func() {
			st.waitStatus(t, ep.ID, evid, registry.DeliverySucceeded)
			eventually(t, "the probation to end", func() bool { return !st.endpointNow(t, ep.ID).Probation })
		}}})
	if err != nil {
		t.Fatal(err)
	}
	e, n, err := svc.Enable(t.Context(), st.tid, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || !e.Probation || e.Concurrency(8) != 1 {
		t.Errorf("Enable answered probation %v, effective concurrency %d, %d requeued; want true, 1, 1",
			e.Probation, e.Concurrency(8), n)
	}
}

// afterEnqueue is an Enqueuer that runs then after each task it enqueued.
type afterEnqueue struct {
	Enqueuer
	then func()
}

func (a afterEnqueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := a.Enqueuer.EnqueueContext(ctx, task, opts...)
	if err == nil {
		a.then()
	}
	return info, err
}
