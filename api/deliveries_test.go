package api_test

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
)

var deliveryFields = []string{"id", "webhookId", "eventId", "eventType", "status", "attemptCount", "nextAttemptAt",
	"waitingFor", "createdAt", "updatedAt"}

var eventID = regexp.MustCompile(`^evt_[0-9a-f]{32}$`)

// assertQueued checks that a task with the id is on the asynq queue.
// assertQueued checks that delivery did of endpoint eid waits on the endpoint's queue and that
// a drain of that queue is on the task queue.
func assertQueued(t *testing.T, e *env, tid, eid, did string) {
	t.Helper()
	if _, ok, err := e.store.QueuedItem(t.Context(), tid, eid, did); !ok || err != nil {
		t.Errorf("delivery %s is not on its endpoint's queue (%v)", did, err)
	}
	tasks, err := asynq.NewInspectorFromRedisClient(e.rdb).ListPendingTasks(delivery.Queue, asynq.PageSize(1000))
	if err != nil {
		t.Fatalf("ListPendingTasks: %v", err)
	}
	for _, ti := range tasks {
		if ti.Type == delivery.TypeDrain && strings.HasPrefix(ti.ID, "q:"+eid+":") {
			return
		}
	}
	t.Errorf("no drain of endpoint %s on queue %s", eid, delivery.Queue)
}

func TestSendTest(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	d := e.sendTest(t, key, id)
	assertFields(t, d, deliveryFields...)
	if d["eventType"] != "webhook.test" || d["webhookId"] != id || d["status"] != "pending" || d["attemptCount"] != float64(0) {
		t.Errorf("test delivery = %v, want a pending webhook.test delivery of %s", d, id)
	}
	if !eventID.MatchString(d["eventId"].(string)) {
		t.Errorf("eventId = %v, want evt_ and 32 hex digits", d["eventId"])
	}
	parseTime(t, d["nextAttemptAt"])
	assertQueued(t, e, tid, id, d["id"].(string))

	got := data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+id+"/deliveries/"+d["id"].(string), key, nil), http.StatusOK)
	assertFields(t, got, append(deliveryFields, "attempts")...)
	if atts, ok := got["attempts"].([]any); !ok || len(atts) != 0 {
		t.Errorf("attempts = %#v, want []", got["attempts"])
	}
	delete(got, "attempts")
	if !reflect.DeepEqual(got, d) {
		t.Errorf("GET delivery = %v, want what POST test answered: %v", got, d)
	}
}

func TestListDeliveries(t *testing.T) {
	e := newEnv(t)
	key, _ := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	var dids []string
	for range 3 {
		dids = append([]string{e.sendTest(t, key, id)["id"].(string)}, dids...) // newest first
		nextMillisecond()
	}
	path := "/api/v1/webhooks/" + id + "/deliveries"
	tests := []struct {
		query string
		want  []string
		pagin []float64
	}{
		{"", dids, []float64{1, 20, 3, 1}},
		{"?limit=2", dids[:2], []float64{1, 2, 3, 2}},
		{"?limit=2&page=2", dids[2:], []float64{2, 2, 3, 2}},
		{"?page=9", nil, []float64{9, 20, 3, 1}},
		{"?status=pending", dids, []float64{1, 20, 3, 1}},
		{"?status=held", nil, []float64{1, 20, 0, 0}},
		{"?status=succeeded", nil, []float64{1, 20, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := e.do(t, http.MethodGet, path+tt.query, key, nil)
			items, pg := listData(t, r)
			var got []string
			for _, it := range items {
				m := it.(map[string]any)
				assertFields(t, m, deliveryFields...)
				got = append(got, m["id"].(string))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
			wantPg := map[string]any{"page": tt.pagin[0], "limit": tt.pagin[1], "total": tt.pagin[2], "totalPages": tt.pagin[3]}
			if !reflect.DeepEqual(pg, wantPg) {
				t.Errorf("pagination = %v, want %v", pg, wantPg)
			}
		})
	}
	t.Run("invalid status", func(t *testing.T) {
		r := e.do(t, http.MethodGet, path+"?status=lost", key, nil)
		assertError(t, r, http.StatusBadRequest, "INVALID_FIELD_TYPE",
			"Field status must be of type pending|retrying|succeeded|failed|held")
	})
}

func TestRetryDelivery(t *testing.T) {
	e := newEnv(t)
	key, tid := e.newKey(t)
	id := e.createWebhook(t, key)["id"].(string)
	did := e.sendTest(t, key, id)["id"].(string)
	recordOutcome(t, e, tid, id, did, 0, registry.OutcomeFailure, 15)
	path := "/api/v1/webhooks/" + id + "/deliveries/" + did
	d := data(t, e.do(t, http.MethodPost, path+"/retry", key, nil), http.StatusAccepted)
	assertFields(t, d, deliveryFields...)
	if d["id"] != did || d["status"] != "pending" || d["attemptCount"] != float64(1) {
		t.Errorf("retried delivery = %v, want %s pending with its 1 attempt kept", d, did)
	}
	assertQueued(t, e, tid, id, did)
	got := data(t, e.do(t, http.MethodGet, path, key, nil), http.StatusOK)
	if atts, _ := got["attempts"].([]any); len(atts) != 1 {
		t.Errorf("attempts = %v, want the 1 recorded before the retry", got["attempts"])
	}
}
