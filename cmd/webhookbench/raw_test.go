package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/signing"
)

// TestRawSmoke runs the raw scenario alone as CI would (--smoke: 300 events, one run): it
// needs neither Redis nor webhookd, and every event arrives once with a valid signature.
func TestRawSmoke(t *testing.T) {
	r, stderr := smokeRun(t, "raw")
	if strings.Contains(stderr, "building ./cmd/webhookd") {
		t.Errorf("raw alone built webhookd:\n%s", stderr)
	}
	for name, want := range map[string]float64{"delivered": 300, "lost": 0, "duplicated": 0, "bad signatures": 0} {
		if got, ok := r.value(name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"delivered/s", "latency p50", "all processes CPU/delivery"} {
		if got, ok := r.value(name); !ok || got <= 0 {
			t.Errorf("%s = %v (present %v), want a measured value", name, got, ok)
		}
	}
}

// TestRawFailsOnLossOrDuplicate: the raw scenario's checks catch a sender that skips an
// event, sends one twice, or signs one with a secret the endpoint does not have.
func TestRawFailsOnLossOrDuplicate(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fault replaces the send of event seq 3: good is the real sender, bad signs with
		// another secret.
		fault func(ctx context.Context, good, bad sendFunc, id string, body []byte) error
		want  string
	}{
		{"lost", func(context.Context, sendFunc, sendFunc, string, []byte) error { return nil },
			"lost 1 of 20 deliveries"},
		{"duplicated", func(ctx context.Context, good, _ sendFunc, id string, body []byte) error {
			if err := good(ctx, id, body); err != nil {
				return err
			}
			return good(ctx, id, body)
		}, "1 duplicated deliveries"},
		{"bad signature", func(ctx context.Context, _, bad sendFunc, id string, body []byte) error {
			return bad(ctx, id, body)
		}, "1 requests with a bad signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBench(t, 20)
			rec := newRecorder()
			rcv, err := startReceiver(b.ca, rec, receiverConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			good, err := b.signedSender(rcv, "raw")
			if err != nil {
				t.Fatal(err)
			}
			bad := otherSecretSender(t, b, rcv.URL("raw"))
			faulty := func(ctx context.Context, id string, body []byte) error {
				if strings.Contains(string(body), `"seq":"3"`) {
					return tc.fault(ctx, good, bad, id, body)
				}
				return good(ctx, id, body)
			}
			r := b.measureRaw(t.Context(), rec, rawPublisher(faulty))
			if !strings.Contains(strings.Join(r.Problems, "\n"), tc.want) {
				t.Errorf("problems = %q, want one with %q", r.Problems, tc.want)
			}
		})
	}
}

// testBench is a bench for in-process scenarios: its CA, n events, 4 senders.
func testBench(t *testing.T, n int) *bench {
	t.Helper()
	ca, err := loadOrCreateAuthority(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &bench{opt: &options{Events: n, Concurrency: 4}, log: io.Discard, ca: ca}
}

// otherSecretSender POSTs to url signed with a fresh secret the receiver does not know.
func otherSecretSender(t *testing.T, b *bench, url string) sendFunc {
	t.Helper()
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.ca.Pool()}}}
	t.Cleanup(hc.CloseIdleConnections)
	return func(ctx context.Context, id string, body []byte) error {
		return signedPost(ctx, hc, url, key, id, body)
	}
}
