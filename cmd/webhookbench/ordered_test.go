package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOrderedSmoke runs the ordered scenario as CI would (--smoke: 150 scans, at most 50 open,
// one run) through the real webhookd on a real redis-server: both endpoints get every callback
// once and signed, the ordered endpoint gets every scan's callbacks in publish order, and both
// sides are reported with their ratio. Any loss, duplicate or scan out of order on the ordered
// endpoint fails the run.
func TestOrderedSmoke(t *testing.T) {
	r, _ := smokeRun(t, "ordered")
	want := map[string]float64{}
	for _, side := range []string{"ordered ", "unordered "} {
		for name, v := range map[string]float64{"delivered": 300, "lost": 0, "duplicated": 0, "bad signatures": 0,
			"scans checked for receipt order": 150} {
			want[side+name] = v
		}
	}
	want["ordered scans received out of order"] = 0
	for name, v := range want {
		if got, ok := r.value(name); !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	for _, name := range []string{"ordered delivered/s", "unordered delivered/s", "ordered ÷ unordered delivered/s",
		"ordered latency p50", "unordered latency p50", "unordered scans received out of order"} {
		if _, ok := r.value(name); !ok {
			t.Errorf("no %s", name)
		}
	}
}

// TestOrderedCatchesDisorderAndLoss: the ordered scenario's checks, fed by a sender that POSTs
// straight to the receiver (no webhookd), catch a scan whose scan.completed arrives before its
// scan.started on the ordered endpoint (and only count it on the unordered one), and a lost
// callback.
func TestOrderedCatchesDisorderAndLoss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		side     orderedSide
		fault    string // "swap" scan 3's callbacks, or "lose" its second
		problem  string // "" for none
		disorder float64
	}{
		{"in order", orderedSides[0], "", "", 0},
		{"out of order on the ordered endpoint", orderedSides[0], "swap",
			"1 of 10 scans received their second callback before their first", 1},
		{"out of order on the unordered endpoint", orderedSides[1], "swap", "", 1},
		{"lost", orderedSides[0], "lose", "lost 1 of 20 deliveries", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBench(t, 20)
			b.opt.Publishers, b.opt.Scans, b.stall = 4, 3, 300*time.Millisecond
			e := &env{b: b, rec: newRecorder()}
			gate := newScanGate(b.opt.Scans, b.stall)
			e.rec.onFirst = gate.received
			rcv, err := startReceiver(b.ca, e.rec, receiverConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			send, err := b.signedSender(rcv, tc.side.label)
			if err != nil {
				t.Fatal(err)
			}
			got := e.measureScans(t.Context(), gate, tc.side, faultySender(send, tc.fault)).r
			problems := strings.Join(got.Problems, "\n")
			if (tc.problem == "") != (problems == "") || !strings.Contains(problems, tc.problem) {
				t.Errorf("problems = %q, want %q", got.Problems, tc.problem)
			}
			if v, _ := got.value("scans received out of order"); v != tc.disorder {
				t.Errorf("scans received out of order = %v, want %v", v, tc.disorder)
			}
		})
	}
}

// faultySender publishes a scan event by POSTing it; for scan 3 (events 6 and 7, published
// one after the other by one publisher) it applies fault: "swap" holds scan.started back
// until scan.completed is sent, "lose" never sends the second callback.
func faultySender(send sendFunc, fault string) scanPublishFunc {
	var mu sync.Mutex
	var held func() error
	return func(ctx context.Context, typ, scanID string, sentAt time.Time, seq int) (string, error) {
		id, body, err := newScanEvent(typ, scanID, sentAt, seq)
		if err != nil {
			return "", err
		}
		post := func() error { return send(ctx, id, body) }
		switch {
		case fault == "swap" && seq == 6:
			mu.Lock()
			held = post
			mu.Unlock()
			return id, nil
		case fault == "swap" && seq == 7:
			if err := post(); err != nil {
				return "", err
			}
			mu.Lock()
			defer mu.Unlock()
			return id, held()
		case fault == "lose" && seq == 7:
			return id, nil
		}
		return id, post()
	}
}

func TestScanGate(t *testing.T) {
	g := newScanGate(1, 50*time.Millisecond)
	if open, ok := g.enter(t.Context(), "a"); !ok || open != 1 {
		t.Fatalf("enter a = %d, %v; want 1, true", open, ok)
	}
	g.received("a")
	g.published("a", 2)
	// One of a's two callbacks is still missing: a stays open and b finds no place.
	if _, ok := g.enter(t.Context(), "b"); ok {
		t.Fatal("b entered while a was open")
	}
	g.received("b") // unknown to the gate: ignored
	g.received("a")
	if open, ok := g.enter(t.Context(), "c"); !ok || open != 1 {
		t.Fatalf("enter c after a closed = %d, %v; want 1, true", open, ok)
	}
	// A scan of which nothing was accepted closes at once.
	g.published("c", 0)
	if _, ok := g.enter(t.Context(), "d"); !ok {
		t.Fatal("d found no place after c closed")
	}
}
