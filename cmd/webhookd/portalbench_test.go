package main

import (
	"encoding/json"

	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api/portal"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// pageRequest is one request the portal makes for its first view; api ones carry the token.
type pageRequest struct {
	name, path string
	api        bool
}

// firstView is every request a browser makes to show the portal's first views: the page, its
// style sheet and every script module it imports, then the endpoint list and one endpoint's
// page (the endpoint, its delivery log and its last 24 hours).
func firstView(eid string) []pageRequest {
	reqs := []pageRequest{{"page", "/portal", false}}
	for _, name := range portal.Assets() {
		reqs = append(reqs, pageRequest{name, "/portal/assets/" + name, false})
	}
	return append(reqs,
		pageRequest{"list", "/api/v1/webhooks?page=1&limit=20", true},
		pageRequest{"endpoint", "/api/v1/webhooks/" + eid, true},
		pageRequest{"log", "/api/v1/webhooks/" + eid + "/deliveries?page=1&limit=20", true},
		pageRequest{"stats", "/api/v1/webhooks/" + eid + "/stats?window=24h", true})
}

// BenchmarkPortalPageLoad measures the portal's first view against a tenant with 100 endpoints
// and 10,000 delivered deliveries (100 events to all 100 endpoints, each with its attempt
// stored; the setup checks the API lists them all). One load is every request of firstView,
// one after another over loopback on a kept-alive connection; each is timed from the request
// to the last byte of the answer: the server's time plus one loopback round trip. Reported,
// as medians over the loads: ms/load (all requests), api-ms/load (the four API calls) and each
// API call's own time.
//
//	go test -run '^$' -bench PortalPageLoad -benchtime 200x -count 3 ./cmd/webhookd/
func BenchmarkPortalPageLoad(b *testing.B) {
	st := newStack(b, map[string]string{"WEBHOOKD_LOG_LEVEL": "warn", "WEBHOOKD_CONCURRENCY": "32"})
	svc := st.start(b)
	_, key := st.tenant(b)
	eps := fillTenant(b, st, svc, key)
	var s struct{ URL string }
	svc.call(b, key, http.MethodPost, "/api/v1/portal/sessions", map[string]any{"expiresInSeconds": 86400}).want(b, http.StatusCreated, &s)
	_, token, _ := strings.Cut(s.URL, "#")

	reqs := firstView(eps[0])
	times := make([][]time.Duration, len(reqs)) // times[request][load]
	for b.Loop() {
		for i, r := range reqs {
			t := ""
			if r.api {
				t = token
			}
			times[i] = append(times[i], fetch(b, svc.URL+r.path, t))
		}
	}
	all, api := make([]time.Duration, len(times[0])), make([]time.Duration, len(times[0]))
	for i, r := range reqs {
		for load, d := range times[i] {
			all[load] += d
			if r.api {
				api[load] += d
			}
		}
		if r.api {
			b.ReportMetric(ms(median(times[i])), r.name+"-ms")
		}
	}
	b.ReportMetric(ms(median(all)), "ms/load")
	b.ReportMetric(ms(median(api)), "api-ms/load")
	b.ReportMetric(float64(len(reqs)), "requests/load")
}

// fillTenant makes 100 endpoints and delivers 100 events to each, then checks through the API
// that the tenant has them all: 100 endpoints, 100 deliveries each, and the first endpoint's
// 100 successful attempts in its stats. It returns the endpoints' ids.
func fillTenant(b *testing.B, st *stack, svc *service, key string) []string {
	rc := deliverytest.NewReceiver(b, deliverytest.Status(http.StatusNoContent))
	eps := make([]string, 100)
	for i := range eps {
		eps[i] = svc.createEndpoint(b, key, rc.URL, []string{registry.EventScanCompleted}, nil).ID
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				svc.publish(b, key, registry.EventScanCompleted, scanData())
			}
		})
	}
	wg.Wait()
	waitFor(b, 5*time.Minute, "10,000 deliveries", func() bool { return rc.Count() >= 10_000 && st.drained(b) })
	if n := listTotal(b, svc, key, "/api/v1/webhooks?limit=1"); n != 100 {
		b.Fatalf("the tenant has %d endpoints, want 100", n)
	}
	deliveries := 0
	for _, eid := range eps {
		deliveries += listTotal(b, svc, key, "/api/v1/webhooks/"+eid+"/deliveries?limit=1&status=succeeded")
	}
	var stats struct{ Hours []struct{ Succeeded int } }
	svc.call(b, key, http.MethodGet, "/api/v1/webhooks/"+eps[0]+"/stats?window=24h", nil).want(b, http.StatusOK, &stats)
	attempts := 0
	for _, h := range stats.Hours {
		attempts += h.Succeeded
	}
	if deliveries != 10_000 || attempts != 100 {
		b.Fatalf("the tenant has %d succeeded deliveries and the first endpoint %d attempts in its stats, want 10,000 and 100",
			deliveries, attempts)
	}
	return eps
}

// listTotal is a list route's pagination total.
func listTotal(b *testing.B, svc *service, key, path string) int {
	var page struct {
		Pagination struct{ Total int } `json:"pagination"`
	}
	r := svc.call(b, key, http.MethodGet, path, nil).want(b, http.StatusOK, nil)
	if err := json.Unmarshal(r.Body, &page); err != nil {
		b.Fatalf("GET %s: %v", path, err)
	}
	return page.Pagination.Total
}

// fetch GETs url (with a portal token when set), fails unless it answers 200, and returns the
// time from sending the request to reading the last byte of the answer.
func fetch(b *testing.B, url, token string) time.Duration {
	req, err := http.NewRequestWithContext(b.Context(), http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Portal-Token", token)
	}
	start := time.Now()
	res, err := apiClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	took := time.Since(start)
	if err != nil || res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v %.200s", url, res.StatusCode, err, body)
	}
	return took
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
