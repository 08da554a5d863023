package registry

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A body is kept without the envelope's parts its record holds (the id, the type) or that are
// the same for every event, its timestamp in ns after its id's time, and, when large,
// compressed, and read back byte for byte as published; a body that does not begin as the
// envelope does (another id, a test event's, a timestamp another writer would write) or does
// not compress is kept as it is; a kept body that only looks compressed reads as kept.
func TestKeptBody(t *testing.T) {
	const typ = "scan.completed"
	id := "evt_019cf6e1fb8f7e5f8a9b0c1d2e3f4a5b" // a UUIDv7 of 2026-03-16
	envelopeAt := func(ts string, data []byte) []byte {
		return slices.Concat([]byte(`{"id":"`+id+`","type":"`+typ+`","timestamp":"`+ts+`","data":`), data, []byte("}"))
	}
	envelope := func(data []byte) []byte { return envelopeAt("2026-12-07T03:10:00.123456789Z", data) }
	small := []byte(`{"scanId":"s","scanType":"zap"}`)
	report := scanReport(4000)
	random := make([]byte, 2000)
	rand.Read(random)
	for _, c := range []struct {
		name               string
		body               []byte
		elided, compressed bool
	}{
		{"a scan report", envelope(report), true, true},
		{"a small event", envelope(small), true, false},
		{"a timestamp to the second", envelopeAt("2026-12-07T03:10:00Z", small), true, false},
		{"a timestamp another writer would not write", envelopeAt("2026-12-07T03:10:00.120Z", small), false, false},
		{"a timestamp with an offset", envelopeAt("2026-12-07T04:10:00.12+01:00", small), false, false},
		{"another event's body", bytes.Replace(envelope(report), []byte(id), []byte("evt_other"), 1), false, true},
		{"an id that names no time", bytes.Replace(envelope(small), []byte(id), []byte("evt_other"), 1), true, false},
		{"a body that does not compress", append([]byte(`{"x":"`), random...), false, false},
	} {
		id := id
		if c.name == "an id that names no time" {
			id = "evt_other"
		}
		kept := keptBody(id, typ, c.body)
		if got := kept[0] == elidedMark; got != c.elided {
			t.Errorf("%s: kept without its envelope's head %t, want %t", c.name, got, c.elided)
		}
		rest := kept
		if c.elided {
			_, rest, _ = bytes.Cut(kept, []byte("|"))
		}
		if got := bytes.HasPrefix(rest, zstdMagic); got != c.compressed {
			t.Errorf("%s: compressed %t, want %t", c.name, got, c.compressed)
		}
		if c.compressed && len(kept) > len(c.body)/2 {
			t.Errorf("%s: kept in %d bytes of %d", c.name, len(kept), len(c.body))
		}
		if !c.compressed && c.elided && len(kept) >= len(c.body)-len(envelopeHead(id, typ)) {
			t.Errorf("%s: kept in %d bytes of %d", c.name, len(kept), len(c.body))
		}
		if ts, _, _ := bytes.Cut(kept[1:], []byte("|")); c.elided && id != "evt_other" && len(ts) > 17 {
			t.Errorf("%s: timestamp kept as %s ns, want the ns after the id's time", c.name, ts)
		}
		if got := readBody(id, typ, kept); !bytes.Equal(got, c.body) {
			t.Errorf("%s: read back %q, not %q as published", c.name, got, c.body)
		}
	}
	fake := append(append([]byte{}, zstdMagic...), "not zstd"...)
	if got := readBody(id, typ, fake); !bytes.Equal(got, fake) {
		t.Errorf("readBody(%q) = %q, want it as kept", fake, got)
	}
}

// BenchmarkKeptBody is what keeping and reading a 2 KB scan report costs: once per event
// published (keptBody) and once per delivery taken (readBody).
func BenchmarkKeptBody(b *testing.B) {
	body := scanReport(2048)
	kept := keptBody("evt_1", "scan.completed", body)
	b.Logf("%d bytes kept in %d", len(body), len(kept))
	b.Run("keep", func(b *testing.B) {
		for b.Loop() {
			keptBody("evt_1", "scan.completed", body)
		}
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			readBody("evt_1", "scan.completed", kept)
		}
	})
}

// scanReport is an event body of about size bytes whose findings are CVE-like records.
func scanReport(size int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"type":"scan.completed","data":{"findings":"`)
	for i := 0; sb.Len() < size; i++ {
		fmt.Fprintf(&sb, "CVE-2026-%05d:%s:%d;", (i*7919)%100000, []string{"low", "high", "critical"}[i%3], i)
	}
	sb.WriteString(`"}}`)
	return []byte(sb.String())
}

// BenchmarkCompactRecords is what the compact records cost webhookd per delivery of a small
// event: its body kept at publish (keptBody), its record read at a take (parseEvent), its
// first-attempt success encoded at a finish (keptField, keptValue).
func BenchmarkCompactRecords(b *testing.B) {
	const id, typ = "evt_019cf6e1fb8f7e5f8a9b0c1d2e3f4a5b", "scan.completed"
	body := []byte(`{"id":"` + id + `","type":"` + typ + `","timestamp":"2026-03-16T13:42:11.087123456Z",` +
		`"data":{"scanId":"4f2a5bea-1415-4d8a-97f5-a725aeba3a4e","scanType":"zap","target":"https://app.example.test"}}`)
	rec := "\x03b0|0a1b2c3d4e5f60718293||" + string(keptBody(id, typ, body))
	b.Run("keep body", func(b *testing.B) {
		for b.Loop() {
			keptBody(id, typ, body)
		}
	})
	b.Run("read record", func(b *testing.B) {
		for b.Loop() {
			parseEvent("t", id, rec)
		}
	})
	b.Run("keep delivery", func(b *testing.B) {
		for b.Loop() {
			keptField("6f1c1a52-3f0b-4f55-9a57-2d5d3c1f7a10")
			keptValue(id, typ, 1765054701000, 1765054701135, "1 1765054701123456789 12 200 0 ok")
		}
	})
}
