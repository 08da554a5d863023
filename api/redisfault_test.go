package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Real faults: a redis-server process the test kills and starts again, not a mock.

// TestRedisKilledAnswers503ThenRecovers kills the registry's redis-server under a running API:
// requests answer 503 SERVICE_UNAVAILABLE (not 500, not a hang), /healthz stays up, and once the
// server is back (AOF on, so the data survives) the same API process serves again.
func TestRedisKilledAnswers503ThenRecovers(t *testing.T) {
	srv := registrytest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: 1, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	e := newEnv(t, withRedis(c))
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)

	srv.Stop()
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/webhooks"}, {http.MethodGet, "/api/v1/webhooks/" + id},
		{http.MethodPost, "/api/v1/events"}, {http.MethodGet, "/readyz"},
	} {
		r := e.do(t, req.method, req.path, key, map[string]any{"type": "scan.completed",
			"data": map[string]any{"scanId": "s-1", "scanType": "zap"}})
		assertError(t, r, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "Service temporarily unavailable")
		assertNoGoText(t, r)
	}
	data(t, e.do(t, http.MethodGet, "/healthz", "", nil), http.StatusOK)

	srv.Restart(t)
	got := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+id, key, nil), http.StatusOK)
	if got["id"] != id {
		t.Errorf("after restart GET = %v, want the endpoint registered before the crash", got)
	}
	data(t, e.do(t, http.MethodGet, "/readyz", "", nil), http.StatusOK)
}

// TestQueueRedisKilledIsKafkaError puts the queue on a second redis-server and kills it: the
// registry still works, so publish answers 503 KAFKA_ERROR and withdraws the event.
func TestQueueRedisKilledIsKafkaError(t *testing.T) {
	qsrv := registrytest.StartServer(t)
	qc := redis.NewClient(&redis.Options{Addr: qsrv.Addr, MaxRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { qc.Close() })
	e := newEnv(t, withEnqueuer(func(delivery.Enqueuer) delivery.Enqueuer { return asynq.NewClientFromRedisClient(qc) }))
	key, _ := e.newKey(t)
	e.createWebhook(t, key)
	qsrv.Stop()
	r := e.publish(t, key, "scan.completed")
	assertError(t, r, http.StatusServiceUnavailable, "KAFKA_ERROR", "Message queue operation failed")
	assertNoGoText(t, r)
	if u := usage(t, e, key); u["eventsPublished"] != float64(0) {
		t.Errorf("eventsPublished = %v after a failed enqueue, want 0 (withdrawn)", u["eventsPublished"])
	}
}
