package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmoke runs the CI smoke mode in-process: a redis-server, a webhookd built from this
// module and a few hundred events through flood, batch, raw, paced, fanout, slow, failing, ordered and throttled, and two
// seconds of mixed gets, lists and publishes. It proves that nothing is lost or duplicated,
// every signature verifies and every mixed request answers 2xx; it never judges speed.
func TestSmoke(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--smoke"}, &stdout, &stderr)
	t.Log(stdout.String())
	if err != nil {
		t.Fatalf("webhookbench --smoke: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"== flood:", "== batch:", "== raw:", "== fanout:", "== failing:", "== mixed:", "== ordered:",
		"== throttled:", "correctness problems: 0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// smokeRun runs one scenario as CI would (--smoke, one run), fails the test on any
// correctness problem, and returns the run from its JSON report and the progress lines.
func smokeRun(t *testing.T, scenario string) (runResult, string) {
	t.Helper()
	jsonPath := filepath.Join(t.TempDir(), scenario+".json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--smoke", "--scenario", scenario, "--json", jsonPath}, &stdout, &stderr)
	t.Log(stdout.String())
	if err != nil {
		t.Fatalf("webhookbench --smoke --scenario %s: %v\n%s", scenario, err, stderr.String())
	}
	return onlyRun(t, jsonPath, scenario), stderr.String()
}

// onlyRun reads a --json report that must hold one run of scenario and returns it.
func onlyRun(t *testing.T, jsonPath, scenario string) runResult {
	t.Helper()
	var rep struct {
		Scenarios []struct {
			Name string
			Runs []runResult
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != 1 || rep.Scenarios[0].Name != scenario || len(rep.Scenarios[0].Runs) != 1 {
		t.Fatalf("report scenarios = %+v, want one run of %s", rep.Scenarios, scenario)
	}
	return rep.Scenarios[0].Runs[0]
}

// TestBatchSmoke runs the batch scenario alone as CI would (--smoke: 300 events in requests
// of 100, one run): every event is accepted and arrives once, signed, and its figures sit
// beside the baselines' in the comparison.
func TestBatchSmoke(t *testing.T) {
	r, _ := smokeRun(t, "batch")
	for name, want := range map[string]float64{"delivered": 300, "lost": 0, "duplicated": 0, "bad signatures": 0} {
		if got, ok := r.value(name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"publish accepted", "delivered/s", "batch round trip p50", "all processes CPU/delivery"} {
		if got, ok := r.value(name); !ok || got <= 0 {
			t.Errorf("%s = %v (present %v), want a measured value", name, got, ok)
		}
	}
}
