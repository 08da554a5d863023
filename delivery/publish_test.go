package delivery

import (
	"encoding/json"
	"testing"
	"time"
)

// The body receivers get begins with its id, type and timestamp, in that order: the registry
// keeps a body without that head (registry/body.go), so its form is part of what is stored.
func TestEventBodyBeginsWithItsHead(t *testing.T) {
	id := NewEventID()
	body, err := EventBody(id, "scan.completed", time.Date(2026, 12, 7, 3, 10, 0, 123456789, time.UTC),
		json.RawMessage(`{ "scanId": "s", "scanType": "zap" }`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"` + id + `","type":"scan.completed","timestamp":"2026-12-07T03:10:00.123456789Z","data":{"scanId":"s","scanType":"zap"}}`
	if string(body) != want {
		t.Errorf("body %s, want %s", body, want)
	}
}
