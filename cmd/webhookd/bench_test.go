package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// BenchmarkEndToEnd publishes b.N events through the API to one HTTPS receiver and reports
// how many deliveries per second the whole path (API, Redis, queue, worker, TLS) sustains.
func BenchmarkEndToEnd(b *testing.B) {
	st := newStack(b, map[string]string{"WEBHOOKD_CONCURRENCY": "64", "WEBHOOKD_LOG_LEVEL": "warn"})
	svc := st.start(b)
	_, key := st.tenant(b)
	rc := deliverytest.NewReceiver(b, deliverytest.Status(http.StatusNoContent))
	svc.createEndpoint(b, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	const publishers = 8
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan struct{})
	errs := make(chan error, publishers)
	for range publishers {
		wg.Go(func() {
			for range next {
				if err := publishQuietly(b, svc, key); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
		})
	}
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	waitFor(b, 5*time.Minute, "every event to be delivered", func() bool { return rc.Count() >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
}

// publishQuietly publishes one event and returns an error instead of failing: it runs on a
// goroutine other than the benchmark's.
func publishQuietly(b *testing.B, svc *service, key string) error {
	body, _ := json.Marshal(map[string]any{"type": registry.EventScanCompleted, "data": scanData()})
	req, err := http.NewRequestWithContext(b.Context(), http.MethodPost, svc.URL+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("publish: %d %s", res.StatusCode, msg)
	}
	return nil
}
