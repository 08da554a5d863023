package main

import (
	"encoding/json"
	"testing"
	"time"
)

// TestPayloadPad: the retained measurement's events carry exactly the data size they are
// reported under.
func TestPayloadPad(t *testing.T) {
	for _, p := range retainedPayloads {
		b, err := json.Marshal(paddedData(time.Now(), 12345, payloadPad(p.bytes)))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != p.bytes {
			t.Errorf("%s payload: data is %d bytes of JSON, want %d", p.label, len(b), p.bytes)
		}
	}
}

// TestMemorySmoke runs the memory scenario as CI would (--smoke): pending and retained
// figures are measured (correctness only: the sizes are not judged here).
func TestMemorySmoke(t *testing.T) {
	r, _ := smokeRun(t, "memory")
	for _, name := range []string{"pending delivery beyond the event: Redis memory/delivery",
		"retained delivered event, 150 B payload: Redis memory/event", "retained delivered event, 2 KB payload: Redis memory/event",
		"retained delivered event, 2 KB payload, hash-max-listpack-value 4096: Redis memory/event"} {
		if got, ok := r.value(name); !ok || got <= 0 {
			t.Errorf("%s = %v (present %v), want a measured size", name, got, ok)
		}
	}
}
