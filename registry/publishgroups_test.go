package registry_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
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
		s, gate, publish := gatedPublishes(t, e, tn.ID, 6) // counts 1 of the 6
		held := publish(withQuota(e.newBatch(1, ""), 6))   // counts 2
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

// TestPublishGroupsCapped: publishes in line run in groups of at most GroupMax events, in their
// order, every batch stored; a group allowed to grow past that (no cap) still stores thousands of
// events of one type in one script, where Lua's unpack once refused the index's ZADD.
func TestPublishGroupsCapped(t *testing.T) {
	perGroup := registry.GroupMax / 100
	for _, c := range []struct {
		name        string
		max, calls  int
		wantScripts int64
	}{
		{"capped", 0, 3*perGroup + 1, 1 + 4},
		{"uncapped", 1 << 20, 50, 1 + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
				tn := e.tenant(t, 0)
				e.endpoint(t, tn.ID)
				s, gate, publish := gatedPublishes(t, e, tn.ID, 0)
				if c.max > 0 {
					s.SetGroupMax(c.max)
				}
				held := publish(e.newBatch(1, ""))
				<-gate.entered
				var line []registry.NewBatch
				var outs []chan publishOutcome
				for i := range c.calls {
					line = append(line, e.newBatch(100, ""))
					outs = append(outs, publish(line[i]))
					waitFor(t, gate, func() bool { return s.PublishWaiting(tn.ID, 0) == i+1 })
				}
				close(gate.release)
				wantNoErr(t, (<-held).err)
				for i, out := range outs {
					if o := <-out; o.err != nil || e.stored(t, tn.ID, line[i]) != 100 {
						t.Fatalf("publish %d of the line: %v, %d of 100 events stored", i, o.err, e.stored(t, tn.ID, line[i]))
					}
				}
				if n := gate.scripts.Load(); n != c.wantScripts {
					t.Errorf("%d script calls for %d publishes of 100 events, want %d", n, c.calls+1, c.wantScripts)
				}
			})
		})
	}
}

// TestPublishWaitsBehindGroups: a publish behind several groups waits for its own, however long
// the line, as long as each group ahead runs within the wait (each script here takes 100 ms,
// the wait is 1 s, and the last group starts after 1.2 s): going alone would only put its
// script in Redis beside theirs.
func TestPublishWaitsBehindGroups(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		e.endpoint(t, tn.ID)
		slow := &slowScripts{delay: 100 * time.Millisecond}
		c := redis.NewClient(e.rdb.(*redis.Client).Options())
		t.Cleanup(func() { c.Close() })
		c.AddHook(slow)
		s, err := registry.New(registry.Config{Client: c, Now: e.clock.Now})
		wantNoErr(t, err)
		_, err = s.PublishEvents(t.Context(), tn.ID, e.newBatch(1, "")) // loads the script
		wantNoErr(t, err)
		slow.armed.Store(true)
		s.SetGroupWait(time.Second)
		const calls = 25 // the first alone, then 12 groups of 2 batches of 100 events
		errs := make(chan error, calls)
		for range calls {
			go func() {
				_, err := s.PublishEvents(t.Context(), tn.ID, e.newBatch(100, ""))
				errs <- err
			}()
		}
		for range calls {
			wantNoErr(t, <-errs)
		}
		if n := slow.scripts.Load(); n != 13 {
			t.Errorf("%d script calls for %d publishes, want 13 (none alone)", n, calls)
		}
	})
}

// slowScripts, once armed, makes every script call take delay longer, and counts them.
type slowScripts struct {
	delay   time.Duration
	armed   atomic.Bool
	scripts atomic.Int64
}

func (h *slowScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *slowScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); h.armed.Load() && (name == "evalsha" || name == "eval") {
			h.scripts.Add(1)
			time.Sleep(h.delay)
		}
		return next(ctx, cmd)
	}
}
func (h *slowScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
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

// gatedPublishes is a store whose client goes through the gate it returns, armed once a publish
// of tenant tid (quota q) has loaded the script, with calls waiting in line for a minute; and
// publish, which publishes a batch in the background.
func gatedPublishes(t *testing.T, e *env, tid string, q int64) (*registry.Store, *scriptGate,
	func(registry.NewBatch) chan publishOutcome) {
	t.Helper()
	gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{})}
	s := gated(t, e, gate, func(s *registry.Store) error {
		_, err := s.PublishEvents(t.Context(), tid, withQuota(e.newBatch(1, ""), q))
		return err
	})
	s.SetGroupWait(time.Minute)
	return s, gate, func(b registry.NewBatch) chan publishOutcome {
		out := make(chan publishOutcome, 1)
		go func() {
			sb, err := s.PublishEvents(t.Context(), tid, b)
			out <- publishOutcome{sb, err}
		}()
		return out
	}
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
