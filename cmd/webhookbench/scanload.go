package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// scanPublishFunc publishes one event of type typ of scan scanID stamped sentAt and returns
// its id.
type scanPublishFunc func(ctx context.Context, typ, scanID string, sentAt time.Time, seq int) (string, error)

// failedEvery makes every failedEvery-th scan end in scan.failed instead of scan.completed.
const failedEvery = 10

// scanPair is one scan's two events as accepted; an id is "" when its publish was rejected
// (and the second is not published when the first was rejected).
type scanPair struct {
	scanID        string
	first, second string
}

// scanLoad is what publishing scans did: every publish in load, every scan in scans.
type scanLoad struct {
	load  *loadResult
	scans []scanPair
	// open is the number of scans open, the new one included, as each scan was opened.
	open []int
	// stalled is set when publishing stopped because no scan closed for the gate's stall time.
	stalled bool
}

// publishScans publishes n scans from workers closed-loop publishers, each scan its
// scan.started and, as soon as that is accepted, its scan.completed (scan.failed for every
// failedEvery-th). A publisher opens a scan only when the gate lets it, so at most the gate's
// width are open at once.
func publishScans(ctx context.Context, n, workers int, gate *scanGate, pub scanPublishFunc) *scanLoad {
	res := &scanLoad{load: &loadResult{ids: make([]string, 0, 2*n), start: time.Now()}, scans: make([]scanPair, n)}
	var mu sync.Mutex
	var stalled atomic.Bool
	closedLoop(ctx, n, workers, func(i int) bool {
		if stalled.Load() {
			return false
		}
		id := uuid.NewString()
		open, ok := gate.enter(ctx, id)
		if !ok {
			stalled.Store(ctx.Err() == nil)
			return false
		}
		mu.Lock()
		res.open = append(res.open, open)
		mu.Unlock()
		res.scans[i] = publishScan(ctx, res.load, pub, id, i)
		gate.published(id, res.scans[i].accepted())
		return true
	})
	res.load.end = time.Now()
	res.stalled = stalled.Load()
	return res
}

// publishScan publishes scan i's two events, the second right after the first is accepted.
func publishScan(ctx context.Context, l *loadResult, pub scanPublishFunc, scanID string, i int) scanPair {
	of := func(typ string) publishFunc {
		return func(ctx context.Context, sentAt time.Time, seq int) (string, error) {
			return pub(ctx, typ, scanID, sentAt, seq)
		}
	}
	p := scanPair{scanID: scanID, first: l.timed(ctx, of("scan.started"), time.Now(), 2*i)}
	if p.first == "" {
		return p
	}
	end := "scan.completed"
	if i%failedEvery == failedEvery-1 {
		end = "scan.failed"
	}
	p.second = l.timed(ctx, of(end), time.Now(), 2*i+1)
	return p
}

// accepted is how many of the scan's events were accepted.
func (p scanPair) accepted() int {
	n := 0
	for _, id := range []string{p.first, p.second} {
		if id != "" {
			n++
		}
	}
	return n
}

// scanGate bounds the scans open at once. A scan opens when a publisher enters it and closes
// once the receivers have every event of it that was accepted; its place is then free.
type scanGate struct {
	places chan struct{}
	stall  time.Duration
	mu     sync.Mutex
	scans  map[string]*gateScan
}

// gateScan is what the gate knows of one open scan.
type gateScan struct {
	published bool // its publisher is done: want is final
	want, got int
}

func newScanGate(width int, stall time.Duration) *scanGate {
	return &scanGate{places: make(chan struct{}, width), stall: stall, scans: make(map[string]*gateScan)}
}

// enter opens scan id once a place is free and returns the scans open now. It gives up when
// ctx ends or no place came free for the stall time (deliveries stopped arriving).
func (g *scanGate) enter(ctx context.Context, id string) (int, bool) {
	g.mu.Lock()
	g.scans[id] = &gateScan{}
	g.mu.Unlock()
	t := time.NewTimer(g.stall)
	defer t.Stop()
	select {
	case g.places <- struct{}{}:
		return len(g.places), true
	case <-ctx.Done():
	case <-t.C:
	}
	g.mu.Lock()
	delete(g.scans, id)
	g.mu.Unlock()
	return 0, false
}

// published tells the gate how many of scan id's events were accepted.
func (g *scanGate) published(id string, accepted int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.scans[id]; s != nil {
		s.published, s.want = true, accepted
		g.closeIfDone(id, s)
	}
}

// received counts the first receipt of an event of scan id (the recorder's onFirst); receipts
// of scans the gate does not know are ignored.
func (g *scanGate) received(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.scans[id]; s != nil {
		s.got++
		g.closeIfDone(id, s)
	}
}

func (g *scanGate) closeIfDone(id string, s *gateScan) {
	if s.published && s.got >= s.want {
		delete(g.scans, id)
		<-g.places
	}
}

// orderTally is how one endpoint's receipts of each scan's two callbacks were ordered.
type orderTally struct {
	checked    int // scans with both callbacks accepted and received
	outOfOrder int // of those, scans whose second callback was received before the first
	// first and second are the publish→receipt latencies of the first and the second
	// callbacks; gaps the second's receipt minus the first's (negative when out of order).
	first, second, gaps []time.Duration
}

// order checks, for each scan, that label received its second callback after its first, by
// the recorder's receipt sequence.
func (r *recorder) order(scans []scanPair, label string) orderTally {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t orderTally
	for _, p := range scans {
		a, b := r.got[deliveryKey(p.first, label)], r.got[deliveryKey(p.second, label)]
		if p.first == "" || p.second == "" || a == nil || b == nil {
			continue // a rejected publish or a loss: counted as such elsewhere
		}
		t.checked++
		if b.seq < a.seq {
			t.outOfOrder++
		}
		t.first = append(t.first, a.latency)
		t.second = append(t.second, b.latency)
		t.gaps = append(t.gaps, b.at.Sub(a.at))
	}
	return t
}

// addScanLoad adds how many scans were open at once; a stall is a problem.
func (r *runResult) addScanLoad(l *scanLoad, width int) {
	if len(l.open) > 0 {
		open := slices.Clone(l.open)
		slices.Sort(open)
		r.add("scans open at a scan's start p50", "", float64(open[(len(open)-1)/2]))
		r.add("scans open at a scan's start max", "", float64(open[len(open)-1]))
	}
	if l.stalled {
		r.problem("publishing stopped: no scan closed for the gate's stall time with %d scans open (deliveries stopped)", width)
	}
}
