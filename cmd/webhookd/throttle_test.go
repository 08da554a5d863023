package main

import (
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// concurrencyView is the part of an endpoint the throttling tests read.
type concurrencyView struct {
	ConsecutiveFailures  int  `json:"consecutiveFailures"`
	EffectiveConcurrency int  `json:"effectiveConcurrency"`
	RateLimitPerSecond   *int `json:"rateLimitPerSecond"`
}

func (s *service) concurrency(t *testing.T, key, eid string) concurrencyView {
	t.Helper()
	var v concurrencyView
	s.call(t, key, http.MethodGet, "/api/v1/webhooks/"+eid, nil).want(t, http.StatusOK, &v)
	return v
}

// TestHealthBackoffLowersConcurrency: 429 answers (with Retry-After) halve the endpoint's
// effective concurrency, which GET and the per-endpoint gauge show, without counting as
// failures; once the receiver answers 2xx again, every delivery arrives and successes grow the
// concurrency back to its ceiling, where the gauge drops the endpoint's series.
func TestHealthBackoffLowersConcurrency(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"WEBHOOKD_MAX_ATTEMPTS": "50"})
	svc := st.start(t)
	_, key := st.tenant(t)
	var throttle atomic.Bool
	throttle.Store(true)
	rc := deliverytest.NewReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if throttle.Load() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	ceiling := svc.concurrency(t, key, ep.ID).EffectiveConcurrency
	if ceiling < 2 {
		t.Fatalf("effectiveConcurrency of a new endpoint = %d, want its ceiling (half of WEBHOOKD_CONCURRENCY 8)", ceiling)
	}
	const n = 12
	var events []string
	for range n {
		events = append(events, svc.publish(t, key, registry.EventScanCompleted, scanData()).ID)
	}
	series := `webhookd_endpoint_effective_concurrency{endpoint="` + ep.ID + `"}`
	waitFor(t, patience, "429s to lower the effective concurrency", func() bool {
		return svc.concurrency(t, key, ep.ID).EffectiveConcurrency < ceiling
	})
	// The worker sets the gauge right after the batch that stored the lowered value.
	waitFor(t, patience, "the gauge to show the endpoint below its ceiling", func() bool {
		v, ok := metricValue(scrape(t, svc), series)
		return ok && v < float64(ceiling)
	})
	if v := svc.concurrency(t, key, ep.ID); v.ConsecutiveFailures != 0 {
		t.Errorf("consecutiveFailures = %d after 429s with Retry-After, want 0 (throttled is no failure)", v.ConsecutiveFailures)
	}

	throttle.Store(false)
	for _, evid := range events {
		svc.waitDelivery(t, key, ep.ID, evid, registry.DeliverySucceeded)
	}
	// Above the safe level the value grows by a probe a second, so deliveries keep coming.
	waitFor(t, patience, "successes to grow the concurrency back", func() bool {
		events = append(events, svc.publish(t, key, registry.EventScanCompleted, scanData()).ID)
		time.Sleep(30 * time.Millisecond)
		return svc.concurrency(t, key, ep.ID).EffectiveConcurrency == ceiling
	})
	for _, evid := range events[n:] {
		svc.waitDelivery(t, key, ep.ID, evid, registry.DeliverySucceeded)
	}
	waitFor(t, patience, "the gauge to drop the endpoint's series", func() bool {
		_, ok := metricValue(scrape(t, svc), series)
		return !ok
	})
	if got := svc.statuses(t, key, ep.ID); got[registry.DeliverySucceeded] != len(events) || len(got) != 1 {
		t.Errorf("deliveries by status = %v, want all %d succeeded", got, len(events))
	}
}

// TestHealthRateLimitPerSecond: an endpoint limited to 2 attempts per second, worked by two
// worker processes, gets every delivery once and with one attempt (waiting for the limit is no
// attempt), never more than the limit allows: a burst of one second's worth, then 2 a second.
func TestHealthRateLimitPerSecond(t *testing.T) {
	t.Parallel()
	_, api, _, key := healthStack(t, nil)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := api.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	const rate, n = 2, 10
	var v concurrencyView
	api.call(t, key, http.MethodPatch, "/api/v1/webhooks/"+ep.ID, map[string]any{"rateLimitPerSecond": rate}).
		want(t, http.StatusOK, &v)
	if v.RateLimitPerSecond == nil || *v.RateLimitPerSecond != rate {
		t.Fatalf("PATCH answered rateLimitPerSecond %v, want %d", v.RateLimitPerSecond, rate)
	}
	var events []string
	for range n {
		events = append(events, api.publish(t, key, registry.EventScanCompleted, scanData()).ID)
	}
	for _, evid := range events {
		if d := api.waitDelivery(t, key, ep.ID, evid, registry.DeliverySucceeded); d.AttemptCount != 1 {
			t.Errorf("delivery %s took %d attempts, want 1: waiting for the limit is no attempt", d.ID, d.AttemptCount)
		}
	}
	if got := rc.IDCounts(); len(got) != n {
		t.Errorf("receiver got %d distinct events, want %d", len(got), n)
	}
	// One second's burst plus one second's rate, and one for the jitter of arrival times.
	if most := mostWithin(rc.Hits(), time.Second); most > 2*rate+1 {
		t.Errorf("receiver got %d POSTs within one second, want at most %d with rateLimitPerSecond %d", most, 2*rate+1, rate)
	}
}

// mostWithin is the most hits that arrived within any span of d.
func mostWithin(hits []deliverytest.Hit, d time.Duration) int {
	at := make([]time.Time, len(hits))
	for i, h := range hits {
		at[i] = h.At
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	most, j := 0, 0
	for i := range at {
		for at[i].Sub(at[j]) > d {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}
