package delivery

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
)

// BenchmarkDeliveryHotPath measures the CPU work of one delivery attempt around the network
// call and the registry write: parsing the endpoint's secrets, signing a 1 KiB body, adding
// the headers, classifying the answer, choosing the next delay and building the AttemptRecord
// (as Worker.attempt does).
func BenchmarkDeliveryHotPath(b *testing.B) {
	mustSecret := func() string {
		s, err := signing.NewSecret()
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	now := time.Now()
	evid := NewEventID()
	body := oneKiBBody(b, evid, now)
	ev := &registry.Event{ID: evid, Type: registry.EventScanCompleted, Body: body}
	d := &registry.Delivery{ID: registry.DeliveryID(ev.ID, "ep"), AttemptCount: 2, RunAttempts: 2}
	policy := RetryPolicy{}.WithDefaults()
	answerBody := bytes.Repeat([]byte("e"), 512)

	for _, bc := range []struct {
		name     string
		rotating bool
		res      Result
	}{
		{"success", false, Result{StatusCode: http.StatusOK, Header: http.Header{}, Duration: 30 * time.Millisecond}},
		{"failure", false, Result{StatusCode: http.StatusInternalServerError, Header: http.Header{}, Body: answerBody,
			Duration: 30 * time.Millisecond}},
		{"throttled rotating", true, Result{StatusCode: http.StatusTooManyRequests,
			Header: http.Header{"Retry-After": []string{"30"}}, Duration: 30 * time.Millisecond}},
	} {
		e := &registry.Endpoint{ID: "ep", Enabled: true, Secret: mustSecret(),
			Headers: map[string]string{"X-Receiver-Token": "tok", "X-Env": "bench"}}
		if bc.rotating {
			e.PrevSecret, e.PrevSecretExpiresAt = mustSecret(), now.Add(time.Hour)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var rec registry.AttemptRecord
			for b.Loop() {
				rec = hotPath(b, e, ev, d, bc.res, policy, now)
			}
			if rec.Outcome == "" {
				b.Fatal("no outcome")
			}
		})
	}
}

// hotPath is Worker.attempt without Send and RecordAttempt.
func hotPath(b *testing.B, e *registry.Endpoint, ev *registry.Event, d *registry.Delivery, res Result,
	policy RetryPolicy, started time.Time) registry.AttemptRecord {
	ks, err := keys(e, started)
	if err != nil {
		b.Fatal(err)
	}
	h := signing.Headers(ks, ev.ID, started, ev.Body)
	for k, v := range e.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "webhookd/bench")
	out := Classify(res.StatusCode, res.Header, res.Err, started)
	delay := policy.Next(d.RunAttempts, out.RetryAfter)
	return registry.AttemptRecord{
		TenantID: "t", Queued: registry.Queued{DeliveryID: d.ID, EndpointID: e.ID}, Outcome: outcomeOf(out.Kind),
		NextAttemptAt: started.Add(res.Duration + delay), DisableAfter: 15, DisableMinWindow: time.Hour,
		MaxAttempts: policy.MaxAttempts,
		Attempt: registry.Attempt{Number: d.AttemptCount + 1, StartedAt: started.UTC(), DurationMs: res.Duration.Milliseconds(),
			StatusCode: res.StatusCode, Error: attemptError(res), ResponseBody: string(res.Body)},
	}
}

// oneKiBBody is an event body of exactly 1024 bytes.
func oneKiBBody(b *testing.B, evid string, now time.Time) []byte {
	event := func(pad int) []byte {
		data, _ := json.Marshal(map[string]string{"scanId": "4b1d0c4e-2f7a-4f7e-9d55-1f1f0b6c7a10",
			"scanType": "zap", "pad": string(bytes.Repeat([]byte("x"), pad))})
		body, err := EventBody(evid, registry.EventScanCompleted, now, data)
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	body := event(1024 - len(event(0)))
	if len(body) != 1024 {
		b.Fatalf("body is %d bytes", len(body))
	}
	return body
}
