package main

import (
	"slices"
	"testing"
	"time"
)

// TestThrottledSmoke runs the throttled scenario as CI would (--smoke: 100 events/s for 2 s to
// a healthy endpoint and one behind a receiver that answers 429 above 4 requests in flight,
// the healthy one alone, and 60 events to a rate-limited endpoint worked by two worker
// processes) through the real webhookd on a real redis-server. Every endpoint gets every event
// once and signed, no throttled delivery ends failed or is left retrying, and the per-second
// figures are reported; speed is never judged.
func TestThrottledSmoke(t *testing.T) {
	r, _ := smokeRun(t, "throttled")
	want := map[string]float64{"bad signatures": 0, "throttled deliveries failed": 0,
		"throttled deliveries retrying": 0, "throttled deliveries pending": 0}
	for prefix, n := range map[string]float64{"healthy beside throttled ": 200, "healthy alone ": 200,
		"throttled ": 200, "rate-limited ": 60} {
		want[prefix+"delivered"], want[prefix+"lost"], want[prefix+"duplicated"] = n, 0, 0
	}
	for name, v := range want {
		if got, ok := r.value(name); !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	for _, name := range []string{"throttled receiver capacity", "throttled attempts", "throttled 429s",
		"throttled 2xx share of attempts, first 5 s", "healthy latency beside throttled p99", "healthy latency alone p99",
		"healthy p99 beside throttled ÷ alone", "rate-limited attempts, first second"} {
		if _, ok := r.value(name); !ok {
			t.Errorf("no %s", name)
		}
	}
	w1, _ := r.value("rate-limited attempts by worker 1")
	w2, _ := r.value("rate-limited attempts by worker 2")
	if w1+w2 != 60 {
		t.Errorf("the workers logged %v + %v attempts of the rate-limited endpoint, want 60 in all", w1, w2)
	}
	if got, _ := r.value("throttled attempts"); got < 200 {
		t.Errorf("throttled attempts = %v, want at least one per delivery (200)", got)
	}
}

// TestThrottle: the throttled receiver's rule admits at most maxInFlight at once and at most
// perSecond within any second, counts each second's attempts, 2xx and 429s, and keeps the
// effective concurrency sampled in each second.
func TestThrottle(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	t.Run("in flight", func(t *testing.T) {
		th := &throttle{maxInFlight: 2}
		th.begin(t0)
		got := []bool{th.admit(at(0)), th.admit(at(10)), th.admit(at(20))}
		th.done()
		got = append(got, th.admit(at(1500)), th.admit(at(1600)))
		if want := []bool{true, true, false, true, false}; !slices.Equal(got, want) {
			t.Errorf("admitted %v, want %v", got, want)
		}
		th.sampleConcurrency(at(100), 4)
		th.sampleConcurrency(at(900), 2)
		want := []throttleSecond{{Attempts: 3, OK: 2, Throttled: 1, ConcMin: 2, ConcMax: 4}, {Attempts: 2, OK: 1, Throttled: 1}}
		if s := th.series(); len(s) != 2 || s[0] != want[0] || s[1] != want[1] {
			t.Errorf("series = %+v, want %+v", s, want)
		}
		if c := th.capacity(50 * time.Millisecond); c != 40 {
			t.Errorf("capacity = %v, want 40/s (2 at a time, 50 ms each)", c)
		}
	})
	t.Run("per second", func(t *testing.T) {
		th := &throttle{perSecond: 3}
		th.begin(t0)
		var got []bool
		for _, ms := range []int{0, 100, 200, 300, 999, 1000, 1150, 1199, 1250} {
			got = append(got, th.admit(at(ms)))
			if got[len(got)-1] {
				th.done()
			}
		}
		// 3 in the first second; at 1000 the one of 0 has left the window, at 1150 the one of 100...
		if want := []bool{true, true, true, false, false, true, true, false, true}; !slices.Equal(got, want) {
			t.Errorf("admitted %v, want %v", got, want)
		}
		if c := th.capacity(time.Second); c != 3 {
			t.Errorf("capacity = %v, want 3/s", c)
		}
		if w := window(th.series(), 0, 5); w.Attempts != 9 || w.OK != 6 || w.Throttled != 3 {
			t.Errorf("window = %+v, want 9 attempts, 6 admitted, 3 throttled", w)
		}
	})
}
