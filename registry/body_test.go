package registry

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
)

// A large JSON body is kept compressed and read back as published; a small one, or one that
// does not compress, is kept as it is; a kept body that only looks compressed reads as kept.
func TestKeptBody(t *testing.T) {
	report := scanReport(4000)
	random := make([]byte, 2000)
	rand.Read(random)
	for _, c := range []struct {
		name       string
		body       []byte
		compressed bool
	}{
		{"a scan report", report, true},
		{"a small body", []byte(`{"type":"scan.started","data":{"scanId":"s"}}`), false},
		{"a body that does not compress", append([]byte(`{"x":"`), random...), false},
	} {
		kept := keptBody(c.body)
		if got := bytes.HasPrefix(kept, zstdMagic); got != c.compressed {
			t.Errorf("%s: compressed %t, want %t", c.name, got, c.compressed)
		}
		if c.compressed && len(kept) > len(c.body)/2 {
			t.Errorf("%s: kept in %d bytes of %d", c.name, len(kept), len(c.body))
		}
		if got := readBody(kept); !bytes.Equal(got, c.body) {
			t.Errorf("%s: read back %d bytes, not the %d published", c.name, len(got), len(c.body))
		}
	}
	fake := append(append([]byte{}, zstdMagic...), "not zstd"...)
	if got := readBody(fake); !bytes.Equal(got, fake) {
		t.Errorf("readBody(%q) = %q, want it as kept", fake, got)
	}
}

// BenchmarkKeptBody is what keeping and reading a 2 KB scan report costs: once per event
// published (keptBody) and once per delivery taken (readBody).
func BenchmarkKeptBody(b *testing.B) {
	body := scanReport(2048)
	kept := keptBody(body)
	b.Logf("%d bytes kept in %d", len(body), len(kept))
	b.Run("keep", func(b *testing.B) {
		for b.Loop() {
			keptBody(body)
		}
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			readBody(kept)
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
