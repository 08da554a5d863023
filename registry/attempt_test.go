package registry

import (
	"fmt"
	"testing"
	"time"
)

// An attempt survives its encoding, whatever its error and body hold; the JSON of records
// written before reads as well; anything else is refused.
func TestAttemptEncoding(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 1, 2, 345678901, time.UTC)
	for _, a := range []Attempt{
		{Number: 1, StartedAt: at, DurationMs: 3, StatusCode: 200, ResponseBody: "ok"},
		{Number: 2, StartedAt: at, DurationMs: 10000, Error: "timeout after 10s", ResponseBody: ""},
		{Number: 3, StartedAt: at, StatusCode: 500, Error: "a b  c", ResponseBody: " {\"x\": 1}\n 7 8 "},
		{Number: 4, StartedAt: at},
	} {
		v := encodeAttempt(&a)
		if want := fmt.Sprintf("%d %d %d %d %d %s%s", a.Number, a.StartedAt.UnixNano(), a.DurationMs, a.StatusCode,
			len(a.Error), a.Error, a.ResponseBody); v != want {
			t.Errorf("encodeAttempt(%+v) = %q, want %q", a, v, want)
		}
		got, ok := decodeAttempt(v)
		if !ok || got != a {
			t.Errorf("decodeAttempt(%q) = %+v, %t; want %+v", v, got, ok, a)
		}
	}
	short := encodeAttempt(&Attempt{Number: 1, StartedAt: at, DurationMs: 42, StatusCode: 204, ResponseBody: `{"ok":true}`})
	if len(short) > 64 {
		t.Errorf("a short answer's attempt takes %d bytes (%q), more than a compact hash value's 64", len(short), short)
	}
	legacy := `{"number":2,"startedAt":"2026-12-06T20:01:02.345678901Z","durationMs":7,"statusCode":503,"error":"","responseBody":"busy"}`
	want := Attempt{Number: 2, StartedAt: at, DurationMs: 7, StatusCode: 503, ResponseBody: "busy"}
	if got, ok := decodeAttempt(legacy); !ok || !got.StartedAt.Equal(want.StartedAt) || got.Number != 2 ||
		got.StatusCode != 503 || got.ResponseBody != "busy" || got.DurationMs != 7 {
		t.Errorf("decodeAttempt(legacy JSON) = %+v, %t; want %+v", got, ok, want)
	}
	for _, bad := range []string{"", "1 2 3", "1 x 3 200 0 ok", "1 2 3 200 9 short", "1 2 3 200 -1 ok", "{"} {
		if got, ok := decodeAttempt(bad); ok {
			t.Errorf("decodeAttempt(%q) = %+v, want refused", bad, got)
		}
	}
}
