package main

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
)

// TestPublishFansOutSigned: every subscribed endpoint gets the event once, signed, with the
// contract's body and headers; an endpoint subscribed to other types gets nothing.
func TestPublishFansOutSigned(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	a := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	b := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusNoContent))
	c := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	epA := svc.createEndpoint(t, key, a.URL, []string{registry.EventScanCompleted},
		map[string]string{"X-Receiver-Token": "tok-a", "X-Env": "e2e"})
	epB := svc.createEndpoint(t, key, b.URL, []string{registry.EventScanCompleted, registry.EventScanFailed}, nil)
	epC := svc.createEndpoint(t, key, c.URL, []string{registry.EventScanFailed}, nil)

	data := scanData()
	data["findings"] = map[string]any{"high": 2.0, "ids": []any{"CVE-1", "CVE-2"}}
	ev := svc.publish(t, key, registry.EventScanCompleted, data)
	if !strings.HasPrefix(ev.ID, "evt_") || ev.Type != registry.EventScanCompleted || ev.Deliveries != 2 {
		t.Fatalf("publish answer = %+v, want an evt_ id, the type and deliveries 2", ev)
	}
	svc.waitDelivery(t, key, epA.ID, ev.ID, registry.DeliverySucceeded)
	svc.waitDelivery(t, key, epB.ID, ev.ID, registry.DeliverySucceeded)
	if ds := svc.deliveries(t, key, epA.ID, registry.DeliverySucceeded); len(ds) != 1 || ds[0].EventID != ev.ID ||
		ds[0].EventType != registry.EventScanCompleted || ds[0].AttemptCount != 1 {
		t.Errorf("succeeded deliveries of A = %+v, want the event's one, after one attempt", ds)
	}
	// A later scan.failed event reaching C shows C's deliveries run; it got nothing before.
	later := svc.publish(t, key, registry.EventScanFailed, scanData())
	svc.waitDelivery(t, key, epC.ID, later.ID, registry.DeliverySucceeded)
	if got := c.IDCounts(); !reflect.DeepEqual(got, map[string]int{later.ID: 1}) {
		t.Errorf("unsubscribed receiver got %v, want only the later scan.failed event once", got)
	}
	if got := len(svc.deliveries(t, key, epC.ID, "")); got != 1 {
		t.Errorf("unsubscribed endpoint has %d deliveries, want 1 (the scan.failed one)", got)
	}

	for _, tc := range []struct {
		name   string
		rc     *deliverytest.Receiver
		ep     endpointView
		header map[string]string
	}{
		{"custom headers", a, epA, map[string]string{"X-Receiver-Token": "tok-a", "X-Env": "e2e"}},
		{"no custom headers", b, epB, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits := tc.rc.HitsFor(ev.ID)
			if len(hits) != 1 {
				t.Fatalf("receiver got the event %d times, want 1", len(hits))
			}
			h := hits[0]
			deliverytest.CheckSigned(t, h, ev.ID, tc.ep.Secret)
			if n := len(strings.Fields(h.Header.Get("webhook-signature"))); n != 1 {
				t.Errorf("webhook-signature has %d entries, want 1", n)
			}
			if got := h.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got := h.Header.Get("User-Agent"); !strings.HasPrefix(got, "webhookd/") {
				t.Errorf("User-Agent = %q, want webhookd/<version>", got)
			}
			for k, v := range tc.header {
				if got := h.Header.Get(k); got != v {
					t.Errorf("custom header %s = %q, want %q", k, got, v)
				}
			}
			deliverytest.CheckBody(t, h.Body, ev.ID, registry.EventScanCompleted, data)
		})
	}
}

// TestSecretRotationSignsWithBoth: during a rotation's grace period a delivery carries one v1
// signature per secret, each made with its own secret. A second rotation without grace stops
// the secret it replaces at once, while the first one keeps signing until its own grace ends.
func TestSecretRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanStarted}, nil)
	type rotated struct {
		Secret         string  `json:"secret"`
		PreviousSecret *string `json:"previousSecret"`
	}
	var r1 rotated
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/rotate-secret", nil).want(t, http.StatusOK, &r1)
	if r1.Secret == ep.Secret || r1.PreviousSecret == nil || *r1.PreviousSecret != ep.Secret {
		t.Fatalf("rotate answer = %+v, want a new secret and the old one as previousSecret", r1)
	}
	ev1 := svc.publish(t, key, registry.EventScanStarted, scanData())
	svc.waitDelivery(t, key, ep.ID, ev1.ID, registry.DeliverySucceeded)
	h := rc.HitsFor(ev1.ID)[0]
	entries := strings.Fields(h.Header.Get("webhook-signature"))
	if len(entries) != 2 {
		t.Fatalf("webhook-signature = %q, want two entries during the grace period", entries)
	}
	// Each entry alone verifies with exactly one secret, and the two entries use different ones.
	var signers []string
	for _, e := range entries {
		if !strings.HasPrefix(e, "v1,") {
			t.Errorf("signature entry %q is not v1", e)
		}
		one := h.Header.Clone()
		one.Set("webhook-signature", e)
		var ok []string
		for _, s := range []string{ep.Secret, r1.Secret} {
			if signing.Verify(s, one, h.Body, h.At) == nil {
				ok = append(ok, s)
			}
		}
		if len(ok) != 1 {
			t.Fatalf("entry %q verifies with %d secrets, want exactly 1", e, len(ok))
		}
		signers = append(signers, ok[0])
	}
	slices.Sort(signers)
	want := []string{ep.Secret, r1.Secret}
	slices.Sort(want)
	if !slices.Equal(signers, want) {
		t.Errorf("entries are signed by the same secret, want one by the old and one by the new")
	}

	var r2 rotated
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/rotate-secret",
		map[string]any{"gracePeriodSeconds": 0}).want(t, http.StatusOK, &r2)
	if r2.PreviousSecret == nil || *r2.PreviousSecret != ep.Secret {
		t.Errorf("previousSecret after a rotation without grace is not the first secret, still in its grace")
	}
	ev2 := svc.publish(t, key, registry.EventScanStarted, scanData())
	svc.waitDelivery(t, key, ep.ID, ev2.ID, registry.DeliverySucceeded)
	h = rc.HitsFor(ev2.ID)[0]
	if n := len(strings.Fields(h.Header.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature has %d entries after a rotation without grace, want 2 (new and first)", n)
	}
	deliverytest.CheckSigned(t, h, ev2.ID, r2.Secret)
	deliverytest.CheckSigned(t, h, ev2.ID, ep.Secret)
	if signing.Verify(r1.Secret, h.Header, h.Body, h.At) == nil {
		t.Error("the replaced secret still verifies a delivery after a rotation without grace")
	}
}

// TestIdempotentPublish: the same Idempotency-Key answers the first event again (200) and
// nothing is delivered twice.
func TestIdempotentPublish(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	data := scanData()
	first := svc.publish(t, key, registry.EventScanCompleted, data, "Idempotency-Key", "scan-42-done")
	var again publishedView
	svc.call(t, key, http.MethodPost, "/api/v1/events", map[string]any{"type": registry.EventScanCompleted, "data": data},
		"Idempotency-Key", "scan-42-done").want(t, http.StatusOK, &again)
	if again.ID != first.ID || again.Deliveries != first.Deliveries {
		t.Fatalf("replayed publish = %+v, want the first event %+v", again, first)
	}
	svc.waitDelivery(t, key, ep.ID, first.ID, registry.DeliverySucceeded)
	other := svc.publish(t, key, registry.EventScanCompleted, scanData())
	svc.waitDelivery(t, key, ep.ID, other.ID, registry.DeliverySucceeded)
	waitFor(t, patience, "the queues to drain", func() bool { return st.drained(t) })
	if got, want := rc.IDCounts(), map[string]int{first.ID: 1, other.ID: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("receiver got %v, want %v", got, want)
	}
	if got := len(svc.deliveries(t, key, ep.ID, "")); got != 2 {
		t.Errorf("endpoint has %d deliveries, want 2 (one per event)", got)
	}
}

// TestTestPingAndManualRetry: POST .../test delivers a signed webhook.test naming the
// endpoint; a manual retry of a succeeded delivery delivers it again with the same webhook-id.
func TestTestPingAndManualRetry(t *testing.T) {
	t.Parallel()
	st := newStack(t, nil)
	svc := st.start(t)
	_, key := st.tenant(t)
	rc := deliverytest.NewReceiver(t, deliverytest.Status(http.StatusOK))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCancelled}, nil)

	var ping deliveryView
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/test", nil).want(t, http.StatusAccepted, &ping)
	if ping.EventType != registry.EventWebhookTest || ping.WebhookID != ep.ID || ping.ID == "" {
		t.Fatalf("test answer = %+v, want a webhook.test delivery of the endpoint", ping)
	}
	svc.waitDelivery(t, key, ep.ID, ping.EventID, registry.DeliverySucceeded)
	hits := rc.HitsFor(ping.EventID)
	if len(hits) != 1 {
		t.Fatalf("receiver got the ping %d times, want 1", len(hits))
	}
	deliverytest.CheckSigned(t, hits[0], ping.EventID, ep.Secret)
	deliverytest.CheckBody(t, hits[0].Body, ping.EventID, registry.EventWebhookTest, map[string]any{"webhookId": ep.ID})

	ev := svc.publish(t, key, registry.EventScanCancelled, scanData())
	d := svc.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliverySucceeded)
	var retried deliveryView
	svc.call(t, key, http.MethodPost, "/api/v1/webhooks/"+ep.ID+"/deliveries/"+d.ID+"/retry", nil).
		want(t, http.StatusAccepted, &retried)
	if retried.ID != d.ID {
		t.Fatalf("retry answered delivery %q, want %q", retried.ID, d.ID)
	}
	waitFor(t, patience, "the retried delivery to arrive", func() bool { return len(rc.HitsFor(ev.ID)) == 2 })
	waitFor(t, patience, "the retried delivery to be recorded", func() bool {
		d = svc.delivery(t, key, ep.ID, d.ID)
		return d.Status == registry.DeliverySucceeded && d.AttemptCount == 2
	})
	for _, h := range rc.HitsFor(ev.ID) {
		deliverytest.CheckSigned(t, h, ev.ID, ep.Secret)
	}
	if n := len(d.Attempts); n != 2 {
		t.Errorf("delivery has %d attempts, want 2", n)
	}
}
