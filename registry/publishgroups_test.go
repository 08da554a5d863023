package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// publishOutcome is what one PublishEvents call answered.
type publishOutcome struct {
	sb  *registry.StoredBatch
	err error
}

// TestPublishGroups: publishes of a tenant that arrive while one of its publish round trips is
// under way wait in line and share the next one, each answered as if published alone, in its
// order: an idempotency key taken earlier in the same group replays that batch (or is
// IDEMPOTENCY_KEY_REUSED for another request), and the quota counts each batch in turn.
func TestPublishGroups(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 6)
		e.endpoint(t, tn.ID)
		gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{})}
		s := gated(t, e, gate, func(s *registry.Store) error { // counts 1 of the 6
			_, err := s.PublishEvents(t.Context(), tn.ID, withQuota(e.newBatch(1, ""), 6))
			return err
		})
		s.SetGroupWait(time.Minute)
		publish := func(b registry.NewBatch) chan publishOutcome {
			out := make(chan publishOutcome, 1)
			go func() {
				sb, err := s.PublishEvents(t.Context(), tn.ID, b)
				out <- publishOutcome{sb, err}
			}()
			return out
		}
		held := publish(withQuota(e.newBatch(1, ""), 6)) // counts 2
		<-gate.entered
		keyed, other := withQuota(e.newBatch(1, "k1"), 6), withQuota(e.newBatch(1, "k1"), 6)
		other.RequestHash = "another"
		line := []registry.NewBatch{
			keyed,                             // stored: 3
			withQuota(e.newBatch(1, "k1"), 6), // replays keyed
			other,                             // IDEMPOTENCY_KEY_REUSED
			withQuota(e.newBatch(2, ""), 6),   // stored: 5
			withQuota(e.newBatch(2, ""), 6),   // QUOTA_EXCEEDED: 7
			withQuota(e.newBatch(1, ""), 6),   // stored: 6
			withQuota(e.newBatch(1, ""), 6),   // QUOTA_EXCEEDED
		}
		var outs []chan publishOutcome
		for i, b := range line { // one at a time, so the line's order is known
			outs = append(outs, publish(b))
			waitFor(t, gate, func() bool { return s.PublishWaiting(tn.ID, 6) == i+1 })
		}
		close(gate.release)
		if o := <-held; o.err != nil {
			t.Fatalf("held publish: %v", o.err)
		}
		got := make([]publishOutcome, len(outs))
		for i, out := range outs {
			got[i] = <-out
		}
		for _, i := range []int{0, 3, 5} {
			if o := got[i]; o.err != nil || o.sb.Replayed || e.stored(t, tn.ID, line[i]) != len(line[i].Events) {
				t.Errorf("publish %d = %+v, %v; want stored", i, o.sb, o.err)
			}
		}
		if o := got[1]; o.err != nil || !o.sb.Replayed || o.sb.Events[0].Event.ID != line[0].Events[0].ID {
			t.Errorf("publish 1 = %+v, %v; want the replay of publish 0", o.sb, o.err)
		}
		wantCode(t, got[2].err, registry.CodeIdempotencyKeyReused)
		for _, i := range []int{4, 6} {
			wantCode(t, got[i].err, registry.CodeQuotaExceeded)
			if n := e.stored(t, tn.ID, line[i]); n != 0 {
				t.Errorf("publish %d over the quota stored %d events", i, n)
			}
		}
		if used := e.used(t, tn.ID); used != 6 {
			t.Errorf("usage %d, want 6", used)
		}
		if n := gate.scripts.Load(); n != 2 {
			t.Errorf("%d script calls for 8 publishes, want 2 (the held one, then the line)", n)
		}
	})
}

// TestPublishLeavesLine: a publish whose context ends while it waits in line leaves it and is
// never stored.
func TestPublishLeavesLine(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{})}
		s := gated(t, e, gate, func(s *registry.Store) error {
			_, err := s.PublishEvents(t.Context(), tn.ID, e.newBatch(1, ""))
			return err
		})
		s.SetGroupWait(time.Minute)
		held := make(chan error, 1)
		go func() {
			_, err := s.PublishEvents(t.Context(), tn.ID, e.newBatch(1, ""))
			held <- err
		}()
		<-gate.entered
		ctx, cancel := context.WithCancel(t.Context())
		b := e.newBatch(1, "")
		left := make(chan error, 1)
		go func() {
			_, err := s.PublishEvents(ctx, tn.ID, b)
			left <- err
		}()
		waitFor(t, gate, func() bool { return s.PublishWaiting(tn.ID, 0) == 1 })
		cancel()
		if err := <-left; !errors.Is(err, context.Canceled) {
			t.Errorf("publish cancelled in line: %v, want context.Canceled", err)
		}
		if n := s.PublishWaiting(tn.ID, 0); n != 0 {
			t.Errorf("%d still in line", n)
		}
		close(gate.release)
		wantNoErr(t, <-held)
		if n := e.stored(t, tn.ID, b); n != 0 || gate.scripts.Load() != 1 {
			t.Errorf("the cancelled publish: %d events stored, %d script calls; want 0, 1", n, gate.scripts.Load())
		}
	})
}

// withQuota is b with quota q.
func withQuota(b registry.NewBatch, q int64) registry.NewBatch {
	b.Quota = q
	return b
}

// waitFor waits until cond holds, releasing gate and failing after 30 s.
func waitFor(t *testing.T, gate *scriptGate, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(gate.release)
			t.Fatal("still not so after 30 s")
		}
	}
}
