package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSmoke runs the CI smoke mode in-process: a redis-server, a webhookd built from this
// module and a few hundred events through flood, paced, fanout, slow and failing, and two
// seconds of mixed gets, lists and publishes. It proves that nothing is lost or duplicated,
// every signature verifies and every mixed request answers 2xx; it never judges speed.
func TestSmoke(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--smoke"}, &stdout, &stderr)
	t.Log(stdout.String())
	if err != nil {
		t.Fatalf("webhookbench --smoke: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"== flood:", "== fanout:", "== failing:", "== mixed:", "correctness problems: 0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
