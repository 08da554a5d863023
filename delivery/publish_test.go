package delivery

import (
	"bytes"
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

// marshalledBody is the body as encoding/json writes it, which EventBody must match byte for
// byte: bodies published before it wrote them by hand are stored, and their receivers have
// seen this form.
func marshalledBody(id, typ string, ts time.Time, data json.RawMessage) ([]byte, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{id, typ, ts.UTC().Format(time.RFC3339Nano), compact.Bytes()})
}

func FuzzEventBodyAsMarshalled(f *testing.F) {
	for _, d := range []string{`{"scanId":"s","scanType":"zap"}`, ` { "a" : [ 1 , 2.50e3, true, null ] } `,
		`{"html":"<script>&amp;</script>","sep":"\u2028\u2029 x"}`, `{"esc":"\"\\\/\b\f\n\r\t\u0001\u00e9é😀"}`,
		`{"n":-0.0e-0}`, `{"a":`, `[1,2]`, `"s"`, `{"a":1} x`, "{\"bad\":\"\xff\"}", ``} {
		f.Add("evt_0193a1b2c3d4e5f60718293a4b5c6d7e", "scan.completed", int64(1796613000123456789), []byte(d))
	}
	f.Add("evt_<\"é\">", "scan.\u2028&\x01", int64(0), []byte(`{}`))
	f.Fuzz(func(t *testing.T, id, typ string, ns int64, data []byte) {
		ts := time.Unix(0, ns)
		got, err := EventBody(id, typ, ts, data)
		want, werr := marshalledBody(id, typ, ts, data)
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("EventBody(%q, %q, %d, %q) = %s, %v; encoding/json: %s, %v", id, typ, ns, data, got, err, want, werr)
		}
	})
}

// BenchmarkEventBody writes the body of a scan event whose data is 190 bytes, as published.
func BenchmarkEventBody(b *testing.B) {
	data := json.RawMessage(`{"scanId":"0f8fad5b-d9cb-469f-a165-70867728950e","scanType":"full",` +
		`"target":"https://app.example.com","status":"completed","findings":{"critical":1,"high":4,"medium":12},` +
		`"sentAt":1733570000123456789}`)
	id, ts := NewEventID(), time.Now()
	for b.Loop() {
		if _, err := EventBody(id, "scan.completed", ts, data); err != nil {
			b.Fatal(err)
		}
	}
}
