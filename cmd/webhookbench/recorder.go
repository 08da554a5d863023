package main

import (
	"context"
	"strings"
	"sync"
	"time"
)

// receipt is what the receivers saw of one (event, endpoint) delivery.
type receipt struct {
	count   int
	latency time.Duration // publish → first receipt
	at      time.Time     // first receipt
	// seq numbers first receipts in the order the recorder got them, over all receivers. A
	// receiver records a delivery before it answers, so a delivery attempted only after another
	// was answered always has the higher seq, whatever the clock's resolution.
	seq int
}

// recorder collects every request the receivers of one scenario run get. It is the ground
// truth for losses and duplicates: one entry per (event id, endpoint label).
type recorder struct {
	mu       sync.Mutex
	got      map[string]*receipt
	failed   map[string]int // failure answers sent, per endpoint label
	badSig   int
	badBody  int
	unknown  int
	lastSeen time.Time
	firstErr string
	seq      int
	// onFirst, when set before the receivers start, is told the data.scanId of each delivery's
	// first receipt (the ordered scenario closes its scans with it).
	onFirst func(scanID string)
}

func newRecorder() *recorder {
	return &recorder{got: make(map[string]*receipt), failed: make(map[string]int)}
}

func deliveryKey(eventID, label string) string { return eventID + "/" + label }

// delivered records a verified, accepted delivery of an event of scanID.
func (r *recorder) delivered(eventID, label, scanID string, sentAt, now time.Time) {
	k := deliveryKey(eventID, label)
	r.mu.Lock()
	r.lastSeen = now
	if g, ok := r.got[k]; ok {
		g.count++
		r.mu.Unlock()
		return
	}
	r.seq++
	r.got[k] = &receipt{count: 1, latency: now.Sub(sentAt), at: now, seq: r.seq}
	r.mu.Unlock()
	if r.onFirst != nil {
		r.onFirst(scanID)
	}
}

// failedAttempt records a verified request the receiver answered with a failure on purpose.
func (r *recorder) failedAttempt(label string) {
	r.mu.Lock()
	r.failed[label]++
	r.mu.Unlock()
}

// problem records a request that should never happen (bad signature, body or endpoint).
func (r *recorder) problem(kind *int, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*kind++
	if r.firstErr == "" {
		r.firstErr = msg
	}
}

// uniqueDelivered is how many distinct (event, endpoint) deliveries arrived so far.
func (r *recorder) uniqueDelivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// waitFor waits until want distinct deliveries arrived. It gives up when nothing new arrived
// for stall, or after limit in all; it reports whether everything arrived.
func (r *recorder) waitFor(ctx context.Context, want int, stall, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	last, lastChange := -1, time.Now()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		n := r.uniqueDelivered()
		if n >= want {
			return true
		}
		now := time.Now()
		if n != last {
			last, lastChange = n, now
		}
		if now.After(deadline) || now.Sub(lastChange) > stall {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// tally compares what arrived with what was expected: one delivery per (event, label).
type tally struct {
	expected, delivered, lost, duplicates int
	latencies                             []time.Duration
	first, last                           time.Time
}

// check tallies the deliveries of events to labels.
func (r *recorder) check(events, labels []string) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := tally{expected: len(events) * len(labels), latencies: make([]time.Duration, 0, len(events)*len(labels))}
	for _, ev := range events {
		for _, l := range labels {
			g, ok := r.got[deliveryKey(ev, l)]
			if !ok {
				t.lost++
				continue
			}
			t.delivered++
			t.duplicates += g.count - 1
			t.latencies = append(t.latencies, g.latency)
			if t.first.IsZero() || g.at.Before(t.first) {
				t.first = g.at
			}
			if g.at.After(t.last) {
				t.last = g.at
			}
		}
	}
	return t
}

// strays counts deliveries of events that are not in published.
func (r *recorder) strays(published []string) int {
	set := make(map[string]bool, len(published))
	for _, id := range published {
		set[id] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k := range r.got {
		if ev, _, _ := strings.Cut(k, "/"); !set[ev] {
			n++
		}
	}
	return n
}

// failures returns the failure answers sent per label and the problem counters.
func (r *recorder) failures() (failed map[string]int, badSig, badBody, unknown int, firstErr string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	failed = make(map[string]int, len(r.failed))
	for k, v := range r.failed {
		failed[k] = v
	}
	return failed, r.badSig, r.badBody, r.unknown, r.firstErr
}
