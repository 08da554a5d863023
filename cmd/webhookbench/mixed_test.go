package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMixScheduleKeepsTheShares(t *testing.T) {
	sched := mixSchedule(mixedOps)
	if len(sched) != 100 {
		t.Fatalf("cycle of %d requests, want 100", len(sched))
	}
	got := make([]int, len(mixedOps))
	for _, op := range sched {
		got[op]++
	}
	for i, op := range mixedOps {
		if got[i] != op.percent {
			t.Errorf("%s: %d of 100, want %d", op.name, got[i], op.percent)
		}
	}
	// Smooth: no operation runs more than twice in a row, so short runs see the mix too.
	for i := 2; i < len(sched); i++ {
		if sched[i] == sched[i-1] && sched[i] == sched[i-2] {
			t.Errorf("%s three times in a row at %d: %v", mixedOps[sched[i]].name, i, sched)
		}
	}
}

func TestMixedReportCountsErrorsAsProblems(t *testing.T) {
	m := &mixedResult{ops: make([]opStats, len(mixedOps)), start: time.Now()}
	m.record(0, "", nil, time.Millisecond)
	m.record(4, "evt_1", nil, 2*time.Millisecond)
	m.record(4, "", errors.New("HTTP 429 RATE_LIMIT_EXCEEDED"), 3*time.Millisecond)
	m.end = m.start.Add(time.Second)
	r := &runResult{}
	m.report(r)
	if len(m.published) != 1 || m.published[0] != "evt_1" {
		t.Errorf("published = %v, want only the accepted event", m.published)
	}
	for name, want := range map[string]float64{"publish requests": 2, "publish errors": 1, "get webhook errors": 0,
		"publish max": 3, "requests answered/s": 3} {
		if v, ok := r.value(name); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "publish: 1 of 2 requests failed; first: HTTP 429") {
		t.Errorf("problems = %q, want the failed publish", r.Problems)
	}
}
