package delivery

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/redis/go-redis/v9"
)

// idleWorker runs a worker whose idle servers wait a minute unless woken (longer than any wait
// of these tests), and waits until every server waits. It returns the worker and its stop.
func (st *stack) idleWorker(t *testing.T, servers int) (*Worker, func()) {
	t.Helper()
	w := st.newWorker(t, WorkerConfig{Servers: servers, IdleWait: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Worker.Run: %v", err)
			}
		case <-time.After(patience):
			t.Fatalf("Worker.Run did not return %s after its context ended", patience)
		}
	})
	t.Cleanup(stop)
	eventually(t, "every server to wait to be woken", func() bool { return w.idle() == servers })
	return w, stop
}

// idle counts the servers waiting to be woken.
func (is idlers) idle() int {
	seen, n := map[*idler]bool{}, 0
	for _, list := range is {
		for _, i := range list {
			if !seen[i] && i.idle.Load() {
				n++
			}
			seen[i] = true
		}
	}
	return n
}

// idle counts the worker's servers that wait to be woken (none before it runs).
func (w *Worker) idle() int {
	if is := w.idlers.Load(); is != nil {
		return is.idle()
	}
	return 0
}

// TestIdleWorkersAreWoken: servers that found their queues empty wait to be woken, not poll:
// an event published then is delivered at once although no server would look again for a
// minute (the publish's drain wakes them through Redis, as it would in another process), and
// so is its retry, which asynq's forwarder moves to the queue when it comes due. With nothing
// queued, the servers stay waiting.
func TestIdleWorkersAreWoken(t *testing.T) {
	st := newStack(t)
	w, _ := st.idleWorker(t, 2)

	time.Sleep(200 * time.Millisecond)
	if n := w.idle(); n != 2 {
		t.Fatalf("%d of 2 servers wait with nothing queued; want both", n)
	}

	rc, ep := st.receiver(t, func(n int, rw http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			rw.WriteHeader(http.StatusServiceUnavailable)
		}
	}, registry.EventScanCompleted)
	first := st.publish(t, registry.EventScanCompleted, nil)
	st.waitStatus(t, ep.ID, first.ID, registry.DeliverySucceeded)
	if got := len(rc.HitsFor(first.ID)); got != 2 {
		t.Errorf("the receiver got %d attempts; want 2 (a 503, then its retry)", got)
	}

	eventually(t, "the servers to wait again", func() bool { return w.idle() == 2 })
	second := st.publish(t, registry.EventScanCompleted, nil)
	st.waitStatus(t, ep.ID, second.ID, registry.DeliverySucceeded)
}

// TestIdleWorkerStops: a worker whose servers wait to be woken (for a minute) stops at once
// when told to; idleWorker's stop fails the test if Run has not returned within patience.
func TestIdleWorkerStops(t *testing.T) {
	st := newStack(t)
	_, stop := st.idleWorker(t, 4)
	stop()
}

// TestWakeSenderCoalesces: the wakes asked for while one is being published go out together,
// in one message, once it is.
func TestWakeSenderCoalesces(t *testing.T) {
	st := newStack(t)
	sub := st.rdb.Subscribe(t.Context(), wakeChannel)
	defer sub.Close()
	if _, err := sub.Receive(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := &wakeSender{rdb: st.rdb, sending: true} // as while a wake is being published
	for _, q := range []string{"b", "a", "c", "a"} {
		s.wake(q)
	}
	s.send() // what the publishing goroutine does next
	select {
	case m := <-sub.Channel():
		if m.Payload != "a,b,c" {
			t.Errorf("woke %q; want a,b,c", m.Payload)
		}
	case <-time.After(patience):
		t.Fatal("no wake published")
	}
	if s.sending {
		t.Error("the sender still counts as sending with nothing left to send")
	}
}

// TestWakeOneWaitingServer: a wake goes to one server of the queue that waits, or to all of them
// when none does; a server that finds a task wakes one more that waits, and one that finds
// nothing wakes none.
func TestWakeOneWaitingServer(t *testing.T) {
	a, b, c := newIdler(1, time.Minute, nil), newIdler(1, time.Minute, nil), newIdler(1, time.Minute, nil)
	is := idlers{"q": {a, b, c}}
	for _, i := range is["q"] {
		i.peers = is
	}
	closed := func(ch chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	b.idle.Store(true)
	c.idle.Store(true)
	chA, chB, chC := a.current(), b.current(), c.current()
	is.wake("q")
	if got := []bool{closed(chA), closed(chB), closed(chC)}; got[0] || !got[1] || got[2] {
		t.Errorf("with b and c waiting, a wake woke a, b, c = %v; want b alone", got)
	}

	b.idle.Store(false)
	c.idle.Store(false)
	chA, chB, chC = a.current(), b.current(), c.current()
	is.wake("q")
	if got := []bool{closed(chA), closed(chB), closed(chC)}; !got[0] || !got[1] || !got[2] {
		t.Errorf("with none waiting, a wake woke a, b, c = %v; want all", got)
	}

	c.idle.Store(true)
	chC = c.current()
	found := func(context.Context, redis.Cmder) error { return nil }
	if err := a.dequeue(t.Context(), nil, "q", found); err != nil || !closed(chC) {
		t.Errorf("a found a task (err %v): c woken %v; want woken", err, closed(chC))
	}
	chC = c.current()
	empty := func(context.Context, redis.Cmder) error { return redis.Nil }
	if err := a.dequeue(t.Context(), nil, "q", empty); !errors.Is(err, redis.Nil) || closed(chC) {
		t.Errorf("a found nothing (err %v): c woken %v; want not woken", err, closed(chC))
	}
}
