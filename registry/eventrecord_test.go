package registry

import (
	"testing"
	"time"
)

// idBytes reads "evt_" and 32 lowercase hex digits, and nothing else; idOfBytes gives the id back.
func TestIDBytes(t *testing.T) {
	id := "evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b"
	b, ok := idBytes(id)
	if !ok || len(b) != 16 || idOfBytes(b) != id {
		t.Fatalf("idBytes(%q) = %q, %t; idOfBytes gives %q", id, b, ok, idOfBytes(b))
	}
	if ms, ok := eventTime(id); !ok || ms != 0x0193a1b2c3d4 {
		t.Errorf("eventTime(%q) = %d, %t; want %d", id, ms, ok, 0x0193a1b2c3d4)
	}
	for _, bad := range []string{"evt_0193A1B2C3D47E5F8A9B0C1D2E3F4A5B", "evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5g",
		"evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5", "xyz_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b", "scan-42", ""} {
		if b, ok := idBytes(bad); ok {
			t.Errorf("idBytes(%q) = %q, want refused", bad, b)
		}
		if _, ok := eventTime(bad); ok {
			t.Errorf("eventTime(%q) read a time", bad)
		}
	}
	if _, ok := eventTime("evt_0193a1b2c3d46e5f8a9b0c1d2e3f4a5b"); ok {
		t.Error("eventTime read a time from an id that is no UUIDv7")
	}
}

// An event's record reads back as written, compact for a UUIDv7 id and a type with a code, as
// text otherwise (another id, a type without a code).
func TestEventRecordReadsBack(t *testing.T) {
	at := time.UnixMilli(0x0193a1b2c3d4 + 1500).UTC()
	for _, c := range []struct {
		id, typ string
		compact bool
	}{
		{"evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b", EventScanCompleted, true},
		{"evt_0193a1b2c3d47e5f8a9b0c1d2e3f4a5b", "custom.type", false},
		{"evt_0193a1b2c3d46e5f8a9b0c1d2e3f4a5b", EventScanStarted, false},
		{"evt_ping", EventWebhookTest, false},
	} {
		body := []byte(`{"id":"x","data":{"a|b":1}}`)
		r := eventRecord(c.id, c.typ, at.UnixMilli(), "lane-1", "ep_x", body)
		if compact := r[0] == compactMark; compact != c.compact {
			t.Errorf("%s %s: compact %t, want %t", c.id, c.typ, compact, c.compact)
		}
		ev := parseEvent("tn_1", c.id, string(r))
		if ev == nil || ev.Type != c.typ || !ev.CreatedAt.Equal(at) || string(ev.Body) != string(body) {
			t.Errorf("%s %s: record %q reads as %+v", c.id, c.typ, r, ev)
		}
	}
}
