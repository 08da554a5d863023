package delivery

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestEndpointSlotsCapPerEndpoint(t *testing.T) {
	s := newEndpointSlots(2)
	r1, ok1 := s.acquire(t.Context(), "ep_a", 0)
	r2, ok2 := s.acquire(t.Context(), "ep_a", 0)
	if !ok1 || !ok2 {
		t.Fatalf("first two acquires = %t, %t; want both", ok1, ok2)
	}
	if _, ok := s.acquire(t.Context(), "ep_a", 10*time.Millisecond); ok {
		t.Fatal("third acquire of ep_a succeeded, want it refused at the cap of 2")
	}
	rb, ok := s.acquire(t.Context(), "ep_b", 0)
	if !ok {
		t.Fatal("ep_b refused while only ep_a is at its cap")
	}
	if got := s.inFlight("ep_a"); got != 2 {
		t.Errorf("inFlight(ep_a) = %d, want 2", got)
	}
	r1()
	r3, ok := s.acquire(t.Context(), "ep_a", 0)
	if !ok {
		t.Fatal("acquire after a release refused")
	}
	r2()
	r3()
	rb()
	if n := len(s.sems); n != 0 {
		t.Errorf("%d endpoints still tracked after every slot was released, want 0", n)
	}
}

func TestEndpointSlotsWaitForRelease(t *testing.T) {
	s := newEndpointSlots(1)
	release, _ := s.acquire(t.Context(), "ep_a", 0)
	got := make(chan bool)
	go func() {
		r, ok := s.acquire(t.Context(), "ep_a", time.Minute)
		if ok {
			r()
		}
		got <- ok
	}()
	release()
	if !<-got {
		t.Fatal("a waiter did not get the slot released while it waited")
	}
}

func TestEndpointSlotsContextEnds(t *testing.T) {
	s := newEndpointSlots(1)
	release, _ := s.acquire(t.Context(), "ep_a", 0)
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, ok := s.acquire(ctx, "ep_a", time.Minute); ok {
		t.Fatal("acquire with an ended context succeeded")
	}
}

func TestEndpointSlotsConcurrent(t *testing.T) {
	const limit, workers = 3, 32
	s := newEndpointSlots(limit)
	var (
		mu       sync.Mutex
		now, top int
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range 200 {
				release, ok := s.acquire(t.Context(), "ep_a", time.Millisecond)
				if !ok {
					continue
				}
				mu.Lock()
				now++
				top = max(top, now)
				mu.Unlock()
				mu.Lock()
				now--
				mu.Unlock()
				release()
			}
		})
	}
	wg.Wait()
	if top > limit {
		t.Errorf("%d attempts held slots at once, want at most %d", top, limit)
	}
	if n := len(s.sems); n != 0 {
		t.Errorf("%d endpoints still tracked, want 0", n)
	}
}

func TestBusyRetryDelay(t *testing.T) {
	for range 100 {
		e := busyRetry()
		if !e.Busy || e.Delay < busyDelay || e.Delay >= busyDelay+busyJitter {
			t.Fatalf("busyRetry() = %+v, want Busy with a delay in [%s, %s)", e, busyDelay, busyDelay+busyJitter)
		}
	}
}
