package main

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// throttle is an overloaded receiver's rule: it answers 429 with Retry-After: 1 to a delivery
// that would put more than maxInFlight requests in flight, or that comes when perSecond were
// admitted within the last second (0: no such limit). It counts, per second since begin, the
// attempts it saw, those it admitted (answered 2xx) and those it throttled.
type throttle struct {
	maxInFlight, perSecond int

	mu       sync.Mutex
	inFlight int
	admitted []time.Time // admissions within the last second, oldest first (perSecond only)
	start    time.Time
	seconds  []throttleSecond
}

// throttleSecond is what one second of a run saw at the throttled receiver.
type throttleSecond struct {
	Attempts, OK, Throttled int
	// ConcMin and ConcMax are the effective concurrency GET showed during the second; 0 when
	// not sampled.
	ConcMin, ConcMax int
}

// begin starts the per-second counts at now (the first publish).
func (t *throttle) begin(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start, t.seconds = now, nil
}

// second returns the counts of the second holding at; the lock is held.
func (t *throttle) second(at time.Time) *throttleSecond {
	i := max(int(at.Sub(t.start)/time.Second), 0)
	for len(t.seconds) <= i {
		t.seconds = append(t.seconds, throttleSecond{})
	}
	return &t.seconds[i]
}

// admit judges one delivery arriving at now: true admits it (the caller answers it and then
// calls done), false means answer 429.
func (t *throttle) admit(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.second(now)
	s.Attempts++
	for len(t.admitted) > 0 && now.Sub(t.admitted[0]) >= time.Second {
		t.admitted = t.admitted[1:]
	}
	if (t.maxInFlight > 0 && t.inFlight >= t.maxInFlight) || (t.perSecond > 0 && len(t.admitted) >= t.perSecond) {
		s.Throttled++
		return false
	}
	s.OK++
	t.inFlight++
	if t.perSecond > 0 {
		t.admitted = append(t.admitted, now)
	}
	return true
}

// done ends an admitted delivery.
func (t *throttle) done() {
	t.mu.Lock()
	t.inFlight--
	t.mu.Unlock()
}

// sampleConcurrency records the effective concurrency GET showed at at.
func (t *throttle) sampleConcurrency(at time.Time, c int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.second(at)
	if s.ConcMin == 0 || c < s.ConcMin {
		s.ConcMin = c
	}
	s.ConcMax = max(s.ConcMax, c)
}

// series returns the per-second counts so far.
func (t *throttle) series() []throttleSecond {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]throttleSecond(nil), t.seconds...)
}

// capacity is what the receiver can answer with 2xx per second when each delivery takes
// delay: maxInFlight at a time, or perSecond, whichever is lower.
func (t *throttle) capacity(delay time.Duration) float64 {
	c := 0.0
	if t.maxInFlight > 0 && delay > 0 {
		c = float64(t.maxInFlight) / delay.Seconds()
	}
	if t.perSecond > 0 && (c == 0 || float64(t.perSecond) < c) {
		c = float64(t.perSecond)
	}
	return c
}

// String names the rule, for descriptions.
func (t *throttle) String() string {
	var parts []string
	if t.maxInFlight > 0 {
		parts = append(parts, fmt.Sprintf("more than %d requests in flight", t.maxInFlight))
	}
	if t.perSecond > 0 {
		parts = append(parts, fmt.Sprintf("above %d requests/s", t.perSecond))
	}
	return "429 (Retry-After: 1) " + strings.Join(parts, " or ")
}

// window sums the seconds [from, to) of a series.
func window(series []throttleSecond, from, to int) throttleSecond {
	var sum throttleSecond
	for i := max(from, 0); i < min(to, len(series)); i++ {
		sum.Attempts += series[i].Attempts
		sum.OK += series[i].OK
		sum.Throttled += series[i].Throttled
	}
	return sum
}

// formatSeries writes a series as "second: attempts/2xx/429 cMin–cMax, ...".
func formatSeries(series []throttleSecond) string {
	parts := make([]string, len(series))
	for i, s := range series {
		parts[i] = fmt.Sprintf("%d: %d/%d/%d", i+1, s.Attempts, s.OK, s.Throttled)
		if s.ConcMax > 0 {
			parts[i] += fmt.Sprintf(" c%d–%d", s.ConcMin, s.ConcMax)
		}
	}
	return strings.Join(parts, ", ")
}
