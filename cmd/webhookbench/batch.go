package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// batchSize is how many events the batch scenario posts in one request (the API's most).
const batchSize = 100

// batch publishes --events events to one endpoint as flood does, but in requests of 100
// (POST /api/v1/events/batch) from --publishers closed-loop publishers: the throughput and
// the cost of each delivery when the publisher batches.
func (b *bench) batch(ctx context.Context) (*runResult, error) {
	return b.saturate(ctx, "batch", "batch round trip", func(e *env) *loadResult {
		return publishBatches(ctx, b.opt.Events, batchSize, b.opt.Publishers, e.api.publishBatch)
	})
}

// batchFunc publishes the events numbered first..first+n-1, stamped sentAt, in one request
// and returns their ids.
type batchFunc func(ctx context.Context, sentAt time.Time, first, n int) ([]string, error)

// publishBatches publishes n events in batches of size from workers closed-loop publishers:
// each sends its next batch as soon as the previous one is answered. A rejected batch counts
// each of its events as rejected; round trips are per request.
func publishBatches(ctx context.Context, n, size, workers int, pub batchFunc) *loadResult {
	res := &loadResult{ids: make([]string, 0, n), start: time.Now()}
	batches := (n + size - 1) / size
	closedLoop(ctx, batches, workers, func(i int) bool {
		first := i * size
		count := min(size, n-first)
		start := time.Now()
		ids, err := pub(ctx, start, first, count)
		res.addBatch(ids, count, err, time.Since(start))
		return true
	})
	res.end = time.Now()
	return res
}

// addBatch records one batch request of count events.
func (r *loadResult) addBatch(ids []string, count int, err error, rtt time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && len(ids) != count {
		err = &apiError{Status: http.StatusAccepted, Code: "answered " + strconv.Itoa(len(ids)) + " events, want " + strconv.Itoa(count)}
	}
	if err != nil {
		r.rejected += count
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
		return
	}
	r.ids = append(r.ids, ids...)
	r.rtts = append(r.rtts, rtt)
}

// publishBatch sends n scan.completed events, each of a scan of its own and carrying sentAt,
// in one batch request.
func (a *apiClient) publishBatch(ctx context.Context, sentAt time.Time, first, n int) ([]string, error) {
	evs := make([]any, n)
	for i := range evs {
		evs[i] = map[string]any{"type": "scan.completed", "data": map[string]any{
			"scanId": uuid.NewString(), "scanType": "zap", "seq": strconv.Itoa(first + i),
			"sentAtUnixNano": sentAt.UnixNano(),
		}}
	}
	var res struct {
		Events []published `json:"events"`
	}
	if err := a.call(ctx, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": evs}, &res); err != nil {
		return nil, err
	}
	ids := make([]string, len(res.Events))
	for i, p := range res.Events {
		ids[i] = p.ID
	}
	return ids, nil
}
