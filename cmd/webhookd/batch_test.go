package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// TestPublishBatchDeliversEachOnce: a batch of 100 events through the API reaches every
// subscribed endpoint once per event, signed, with the body each event was published with;
// an endpoint ordered by scan gets each scan's events in the batch's order.
func TestPublishBatchDeliversEachOnce(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	plain := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ordered := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusNoContent))
	epPlain := svc.createEndpoint(t, key, plain.URL, registry.EventTypes, nil)
	var epOrdered endpointView
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks", map[string]any{"url": ordered.URL,
		"events": registry.EventTypes, "ordering": "scan"}).want(t, http.StatusCreated, &epOrdered)

	// 50 scans, each started then completed: 100 events in one request.
	var events []any
	var datas []map[string]any
	for i := range 50 {
		scan := uuid.NewString()
		for _, typ := range []string{registry.EventScanStarted, registry.EventScanCompleted} {
			d := map[string]any{"scanId": scan, "scanType": "nmap", "seq": fmt.Sprint(i)}
			datas = append(datas, d)
			events = append(events, map[string]any{"type": typ, "data": d})
		}
	}
	var got struct {
		Events []publishedView `json:"events"`
	}
	svc.call(t, key, http.MethodPost, "/api/v1/events/batch", map[string]any{"events": events}).
		want(t, http.StatusAccepted, &got)
	if len(got.Events) != 100 {
		t.Fatalf("batch answered %d events, want 100", len(got.Events))
	}
	waitFor(t, patience, "every event at both receivers", func() bool {
		return len(plain.IDCounts()) == 100 && len(ordered.IDCounts()) == 100
	})
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })

	for _, rc := range []struct {
		name   string
		rc     *deliverytest.Receiver
		secret string
	}{{"plain", plain, epPlain.Secret}, {"ordered", ordered, epOrdered.Secret}} {
		t.Run(rc.name, func(t *testing.T) {
			if n := rc.rc.Count(); n != 100 {
				t.Errorf("receiver got %d POSTs, want 100: each event once", n)
			}
			for i, ev := range got.Events {
				hits := rc.rc.HitsFor(ev.ID)
				if len(hits) != 1 || ev.Type != events[i].(map[string]any)["type"] || ev.Deliveries != 2 {
					t.Fatalf("event %d (%+v) arrived %d times, want once with its type and 2 deliveries", i, ev, len(hits))
				}
				deliverytest.CheckSigned(t, hits[0], ev.ID, rc.secret)
				deliverytest.CheckBody(t, hits[0].Body, ev.ID, ev.Type, datas[i])
			}
		})
	}
	// The ordered endpoint got each scan's scan.started before its scan.completed.
	pos := map[string]int{}
	for i, h := range ordered.Hits() {
		pos[h.Header.Get("webhook-id")] = i
	}
	for i := 0; i < 100; i += 2 {
		if pos[got.Events[i].ID] > pos[got.Events[i+1].ID] {
			t.Errorf("scan %d: scan.completed arrived before scan.started", i/2)
		}
	}
	if ds := svc.deliveries(t, key, epPlain.ID, registry.DeliverySucceeded); len(ds) != 100 {
		t.Errorf("plain endpoint lists %d succeeded deliveries, want 100", len(ds))
	}
}
