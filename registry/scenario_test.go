package registry_test

import (
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// scenarioResult names what a full scenario created.
type scenarioResult struct {
	tenants []string
	apiKeys []string
}

// fullScenario drives every store operation over two tenants: tenants, keys, rate limit,
// endpoints, publish (with replay, quota and retract), fan-out, attempts of every outcome,
// auto-disable, a retry timer, enable, manual disable, requeue, test ping, rotation and deletion.
func fullScenario(t *testing.T, e *env) scenarioResult {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var res scenarioResult
	t1, t2 := e.tenant(t, 100), e.tenant(t, 0)
	res.tenants = []string{t1.ID, t2.ID}
	_, err := e.store.SetTenantStatus(ctx, t2.ID, registry.StatusSuspended)
	must(err)
	_, err = e.store.TenantIDs(ctx)
	must(err)

	for _, tid := range res.tenants {
		k, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tid, Scopes: registry.Scopes})
		res.apiKeys = append(res.apiKeys, k.ID)
		_, err = lookup(ctx, e, plain)
		must(err)
		_, err = e.store.AllowRequest(ctx, k.ID, 600)
		must(err)
		_, err = e.store.SetAPIKeyStatus(ctx, k.ID, registry.StatusSuspended)
		must(err)
		_, err = e.store.ListAPIKeys(ctx, tid)
		must(err)
	}

	a := e.endpoint(t, t1.ID, registry.EventScanCompleted)
	b := e.endpoint(t, t1.ID, registry.EventScanCompleted, registry.EventScanFailed)
	c := e.endpoint(t, t1.ID, registry.EventScanCompleted, registry.EventScanStarted)
	desc := "updated"
	_, _, err = e.store.UpdateEndpoint(ctx, t1.ID, a.ID, registry.EndpointPatch{Description: &desc,
		Events:  []string{registry.EventScanCompleted, registry.EventScanCancelled},
		Headers: map[string]string{"X-Env": "test"}, HeadersSet: true})
	must(err)
	_, err = e.store.RotateSecret(ctx, t1.ID, a.ID, newSecret(t), time.Hour)
	must(err)
	_, _, err = e.store.ListEndpoints(ctx, t1.ID, registry.StatusActive, registry.Page{Page: 1, Limit: 20})
	must(err)
	_, err = e.store.SubscribedEndpoints(ctx, t1.ID, registry.EventScanCompleted)
	must(err)

	n := newEvent(e, registry.EventScanCompleted, "idem-1", 100)
	st, err := e.store.PublishEvent(ctx, t1.ID, n)
	must(err)
	_, err = e.store.PublishEvent(ctx, t1.ID, newEvent(e, registry.EventScanCompleted, "idem-1", 100))
	must(err)
	_, err = e.store.Usage(ctx, t1.ID)
	must(err)
	due, err := e.store.DueOutbox(ctx, t1.ID, e.clock.Now().Add(time.Minute), 10)
	must(err)
	must(e.store.OutboxDone(ctx, t1.ID, entries(due)...))
	retracted, err := e.store.PublishEvent(ctx, t1.ID, newEvent(e, registry.EventScanStarted, "idem-2", 100))
	must(err)
	_, err = e.retract(ctx, t1.ID, "idem-2", retracted)
	must(err)

	qs := ids(e.fanout(t, st.Event, a.ID, b.ID, c.ID))
	qa, qb, qc := qs[registry.DeliveryID(n.ID, a.ID)], qs[registry.DeliveryID(n.ID, b.ID)], qs[registry.DeliveryID(n.ID, c.ID)]
	_, _, err = e.store.Take(ctx, registry.TakeRequest{TenantID: t1.ID, EndpointID: a.ID, N: e.leaseOf(t, t1.ID, a.ID),
		Limit: 10, Renew: true})
	must(err)
	e.attempt(t, t1.ID, qa, registry.OutcomeSuccess, lenient)
	e.attempt(t, t1.ID, qc, registry.OutcomeThrottled, lenient)
	second := e.deliver(t, t1.ID, b.ID)
	for range 2 {
		e.clock.Advance(time.Minute)
		e.attempt(t, t1.ID, qb, registry.OutcomeFailure, policy{disableAfter: 2, maxAttempts: 5})
	}
	_, err = e.store.Due(ctx, t1.ID, registry.Retry{DeliveryID: second.DeliveryID, EndpointID: b.ID,
		Generation: second.Generation, Run: 1})
	must(err)
	_, _, err = e.store.ListDeliveries(ctx, t1.ID, b.ID, registry.DeliveryHeld, registry.Page{Page: 1, Limit: 20})
	must(err)
	_, err = e.store.Delivery(ctx, t1.ID, b.ID, qb.DeliveryID, true)
	must(err)
	_, err = e.store.EnableEndpoint(ctx, t1.ID, b.ID)
	must(err)
	_, err = e.store.RequeueDelivery(ctx, t1.ID, a.ID, qa.DeliveryID)
	must(err)
	_, _, err = e.store.CreateTestDelivery(ctx, &registry.Event{ID: "evt_ping", TenantID: t1.ID,
		Type: registry.EventWebhookTest, CreatedAt: e.clock.Now(), Body: []byte(`{}`)}, a.ID)
	must(err)
	_, err = e.store.DisableEndpoint(ctx, t1.ID, c.ID, registry.ReasonManual)
	must(err)
	must(e.store.DeleteEndpoint(ctx, t1.ID, c.ID))

	d := e.endpoint(t, t2.ID, registry.EventScanFailed)
	ev2 := e.publish(t, t2.ID, registry.EventScanFailed)
	for _, q := range e.fanout(t, ev2, d.ID) {
		e.attempt(t, t2.ID, q, registry.OutcomeGone, lenient)
	}
	_, err = e.store.EnableEndpoint(ctx, t2.ID, d.ID)
	must(err)
	return res
}
