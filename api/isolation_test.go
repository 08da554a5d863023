package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/registry"
	"github.com/google/uuid"
)

// snapshot reads everything tenant A can see of one endpoint.
func snapshot(t *testing.T, e *env, key, id, did string) [][]byte {
	t.Helper()
	hook := "/api/v1/webhooks/" + id
	var out [][]byte
	for _, p := range []string{hook, hook + "/secret", hook + "/deliveries", hook + "/deliveries/" + did, "/api/v1/usage"} {
		r := e.do(t, http.MethodGet, p, key, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200; %s", p, r.status, r.body)
		}
		out = append(out, r.body)
	}
	return out
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	keyA, tidA := e.newKey(t)
	keyB, _ := e.newKey(t)
	hookA := e.createWebhook(t, keyA, "scan.completed")["id"].(string)
	didA := e.sendTest(t, keyA, hookA)["id"].(string)
	recordOutcome(t, e, tidA, hookA, didA, 0, registry.OutcomeSuccess, 15)
	hookB := e.createWebhook(t, keyB, "scan.completed")["id"].(string)
	didB := e.sendTest(t, keyB, hookB)["id"].(string)
	before := snapshot(t, e, keyA, hookA, didA)

	for _, op := range webhookOps(hookA, didA) {
		t.Run("B on A's endpoint/"+op.name, func(t *testing.T) {
			body := opBody(op.method)
			if op.method == http.MethodPatch {
				body = map[string]any{"enabled": false, "url": e.hookURL("/stolen"), "events": []string{"scan.failed"}}
			}
			r := e.do(t, op.method, op.path, keyB, body)
			assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
		})
	}
	for _, op := range []struct{ name, method, suffix string }{{"get", "GET", ""}, {"retry", "POST", "/retry"}} {
		t.Run("B's endpoint with A's delivery/"+op.name, func(t *testing.T) {
			r := e.do(t, op.method, "/api/v1/webhooks/"+hookB+"/deliveries/"+didA+op.suffix, keyB, nil)
			assertError(t, r, http.StatusNotFound, "DELIVERY_NOT_FOUND", "Delivery not found")
		})
	}
	t.Run("B's publish reaches only B's endpoints", func(t *testing.T) {
		if d := data(t, e.publish(t, keyB, "scan.completed"), http.StatusAccepted); d["deliveries"] != float64(1) {
			t.Errorf("deliveries = %v, want 1 (B's own endpoint)", d["deliveries"])
		}
	})
	t.Run("lists show only the tenant's own endpoints", func(t *testing.T) {
		for _, c := range []struct{ key, want string }{{keyA, hookA}, {keyB, hookB}} {
			items, pg := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks", c.key, nil))
			if len(items) != 1 || items[0].(map[string]any)["id"] != c.want || pg["total"] != float64(1) {
				t.Errorf("list = %v (total %v), want only %s", items, pg["total"], c.want)
			}
		}
	})
	t.Run("A's endpoint is unchanged", func(t *testing.T) {
		after := snapshot(t, e, keyA, hookA, didA)
		for i := range before {
			if !bytes.Equal(before[i], after[i]) {
				t.Errorf("A's view changed:\nbefore %s\nafter  %s", before[i], after[i])
			}
		}
	})
	t.Run("B's own delivery is still B's", func(t *testing.T) {
		data(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+hookB+"/deliveries/"+didB, keyB, nil), http.StatusOK)
		r := e.do(t, http.MethodGet, "/api/v1/webhooks/"+hookA+"/deliveries/"+didB, keyA, nil)
		assertError(t, r, http.StatusNotFound, "DELIVERY_NOT_FOUND", "Delivery not found")
	})
}

// testClock is a clock the test sets by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// clockRegistry is the real store with the API's clock (key expiry, X-RateLimit-Reset,
// secret grace) read from a testClock.
type clockRegistry struct {
	*registry.Store
	clock *testClock
}

func (c *clockRegistry) Now() time.Time { return c.clock.Now() }

// withClock makes the API read the time from c.
func withClock(c *testClock) option {
	return withRegistry(func(s *registry.Store) api.Registry { return &clockRegistry{Store: s, clock: c} })
}

// twoTenants is tenant A with an active, a disabled and a deleted endpoint, each with a
// delivery, and an event; and tenant B with one endpoint and delivery of its own. Keys have a
// rate limit high enough that X-RateLimit-Remaining is the same on every answer.
type twoTenants struct {
	keyA, keyB, tidA, tidB                  string
	hookA, hookOff, hookGone, hookB         string
	didA, didOff, didGone, didB, evtA, evtB string
	rcvA                                    string
}

func newTwoTenants(t *testing.T, e *env) *twoTenants {
	t.Helper()
	w := &twoTenants{tidA: e.tenant(t, 0), tidB: e.tenant(t, 0)}
	w.keyA, _ = e.key(t, registry.NewKeyParams{TenantID: w.tidA, RateLimitPerMinute: 1_000_000})
	w.keyB, _ = e.key(t, registry.NewKeyParams{TenantID: w.tidB, RateLimitPerMinute: 1_000_000})
	w.hookA = e.createWebhook(t, w.keyA, "scan.completed")["id"].(string)
	w.evtA = data(t, e.publish(t, w.keyA, "scan.completed"), http.StatusAccepted)["id"].(string)
	items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+w.hookA+"/deliveries", w.keyA, nil))
	if len(items) != 1 {
		t.Fatalf("A's endpoint has %d deliveries, want the event's one", len(items))
	}
	w.didA = items[0].(map[string]any)["id"].(string)
	recordOutcome(t, e, w.tidA, w.hookA, w.didA, 0, registry.OutcomeSuccess, 15)
	w.hookOff = e.createWebhook(t, w.keyA)["id"].(string)
	w.didOff = e.sendTest(t, w.keyA, w.hookOff)["id"].(string)
	data(t, e.do(t, http.MethodPatch, "/api/v1/webhooks/"+w.hookOff, w.keyA, map[string]any{"enabled": false}), http.StatusOK)
	w.hookGone = e.createWebhook(t, w.keyA)["id"].(string)
	w.didGone = e.sendTest(t, w.keyA, w.hookGone)["id"].(string)
	data(t, e.do(t, http.MethodDelete, "/api/v1/webhooks/"+w.hookGone, w.keyA, nil), http.StatusOK)
	w.hookB = e.createWebhook(t, w.keyB, "scan.completed")["id"].(string)
	w.didB = e.sendTest(t, w.keyB, w.hookB)["id"].(string)
	w.evtB = data(t, e.publish(t, w.keyB, "scan.completed"), http.StatusAccepted)["id"].(string)
	w.rcvA = data(t, e.do(t, http.MethodPost, "/api/v1/webhooks/"+w.hookA+"/recover", w.keyA,
		map[string]any{"since": "2020-01-01T00:00:00Z"}), http.StatusAccepted)["id"].(string)
	return w
}

// idCase fills a route's path parameters with tenant A's ids, to be compared with the same
// request for ids that exist nowhere. ref fixes a parameter to the same value on both sides.
type idCase struct {
	name string
	a    map[string]string
	ref  map[string]string
}

func (w *twoTenants) idCases() []idCase {
	return []idCase{
		{"A's endpoint and delivery", map[string]string{"id": w.hookA, "deliveryId": w.didA, "eventId": w.evtA, "recoveryId": w.rcvA}, nil},
		{"A's disabled endpoint and its delivery", map[string]string{"id": w.hookOff, "deliveryId": w.didOff, "eventId": w.evtA, "recoveryId": w.rcvA}, nil},
		{"A's deleted endpoint and its delivery", map[string]string{"id": w.hookGone, "deliveryId": w.didGone, "eventId": w.evtA, "recoveryId": w.rcvA}, nil},
		{"A's endpoint with B's delivery", map[string]string{"id": w.hookA, "deliveryId": w.didB, "eventId": w.evtA, "recoveryId": w.rcvA},
			map[string]string{"deliveryId": w.didB}},
		{"B's endpoint with A's delivery", map[string]string{"id": w.hookB, "deliveryId": w.didA, "eventId": w.evtA, "recoveryId": w.rcvA},
			map[string]string{"id": w.hookB}},
	}
}

// variant is one way of calling a route: a query string and a body.
type variant struct {
	query string
	body  any
}

// isolationVariants are the calls tried on each route besides the plain one: every body or
// query that could make the answer depend on the endpoint, valid or not.
func isolationVariants(e *env, w *twoTenants) map[string][]variant {
	return map[string][]variant{
		"PATCH /api/v1/webhooks/:id": {{body: map[string]any{"enabled": false}}, {body: map[string]any{"enabled": true}},
			{body: map[string]any{"url": e.hookURL("/stolen")}}, {body: map[string]any{"events": []string{"scan.failed"}}},
			{body: map[string]any{"events": []string{"scan.bogus"}}}, {body: map[string]any{"url": "http://insecure"}},
			{body: "{"}, {body: map[string]any{}}},
		"POST /api/v1/webhooks/:id/rotate-secret": {{body: map[string]any{"gracePeriodSeconds": 0}},
			{body: map[string]any{"gracePeriodSeconds": -1}}, {body: "[]"}},
		"POST /api/v1/webhooks/:id/test":                         {{body: "{"}},
		"POST /api/v1/webhooks/:id/deliveries/:deliveryId/retry": {{body: "{"}},
		"GET /api/v1/webhooks/:id/deliveries/:deliveryId":        {{query: "?attempts=true"}},
		"DELETE /api/v1/webhooks/:id":                            {{query: "?force=true"}},
		"GET /api/v1/webhooks/:id/secret":                        {{query: "?previous=true"}},
		"GET /api/v1/webhooks/:id":                               {{query: "?eventId=" + w.evtA}},
		"GET /api/v1/webhooks/:id/deliveries": {{query: "?status=succeeded"}, {query: "?status=pending"},
			{query: "?status=bogus"}, {query: "?page=2&limit=1"}, {query: "?limit=0"}, {query: "?eventId=" + w.evtA}},
	}
}

// fillPath puts values into a route's :params; it fails on a parameter it has no value for.
func fillPath(t *testing.T, route string, values func(param string) string) string {
	t.Helper()
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = values(name)
		}
	}
	return strings.Join(parts, "/")
}

// sameAnswer fails unless got and want have the same status, the same body byte for byte and
// the same headers but Date.
func sameAnswer(t *testing.T, got, want *response) {
	t.Helper()
	if got.status != want.status || !bytes.Equal(got.body, want.body) {
		t.Errorf("answer for A's ids differs from the answer for unknown ids:\n A's:    %d %s\n unknown: %d %s",
			got.status, got.body, want.status, want.body)
	}
	g, w := got.header.Clone(), want.header.Clone()
	g.Del("Date")
	w.Del("Date")
	if !reflect.DeepEqual(g, w) {
		t.Errorf("headers differ:\n A's:    %v\n unknown: %v", g, w)
	}
	if got.status < 400 || got.status >= 500 {
		t.Errorf("status %d for another tenant's id, want a 4xx", got.status)
	}
}

// TestAnotherTenantsIDsAnswerLikeUnknownIDs takes every route of the API that has a path
// parameter, straight from Echo's route table, and calls it as tenant B with tenant A's ids
// and with ids that exist nowhere: the two answers must be the same to the byte (the client
// sends the request id, so the envelope's requestId is the same too), and no call may change
// anything of A's. A new route is covered as soon as it is added; one with a parameter this
// test cannot fill fails it.
func TestAnotherTenantsIDsAnswerLikeUnknownIDs(t *testing.T) {
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, withClock(clock))
	w := newTwoTenants(t, e)
	before := append(snapshot(t, e, w.keyA, w.hookA, w.didA), snapshot(t, e, w.keyA, w.hookOff, w.didOff)...)
	variants := isolationVariants(e, w)
	routes := map[string]bool{}
	n := 0
	for _, rt := range e.srv.Echo().Routes() {
		if !strings.Contains(rt.Path, ":") {
			continue
		}
		route := rt.Method + " " + rt.Path
		routes[route] = true
		calls := append([]variant{{body: opBody(rt.Method)}}, variants[route]...)
		for _, c := range w.idCases() {
			if c.ref != nil && !strings.Contains(rt.Path, ":deliveryId") {
				continue // fixing B's endpoint without a delivery id is B's own endpoint
			}
			for i, v := range calls {
				t.Run(fmt.Sprintf("%s/%s/%d", route, c.name, i), func(t *testing.T) {
					n++
					compareAsB(t, e, w, rt.Method, rt.Path, c, v)
				})
			}
		}
	}
	for _, op := range webhookOps(":id", ":deliveryId") {
		if !routes[op.method+" "+op.path] {
			t.Errorf("route %s %s is not in Echo's route table", op.method, op.path)
		}
	}
	for route := range variants {
		if !routes[route] {
			t.Errorf("variants name %s, which is no route", route)
		}
	}
	if len(routes) < 9 || n == 0 {
		t.Fatalf("%d routes with parameters and %d comparisons: the route table was not read", len(routes), n)
	}
	t.Run("A's endpoints are unchanged", func(t *testing.T) {
		after := append(snapshot(t, e, w.keyA, w.hookA, w.didA), snapshot(t, e, w.keyA, w.hookOff, w.didOff)...)
		for i := range before {
			if !bytes.Equal(before[i], after[i]) {
				t.Errorf("A's view changed:\nbefore %s\nafter  %s", before[i], after[i])
			}
		}
		r := e.do(t, http.MethodGet, "/api/v1/webhooks/"+w.hookGone, w.keyA, nil)
		assertError(t, r, http.StatusNotFound, "WEBHOOK_NOT_FOUND", "Webhook not found")
	})
}

// compareAsB sends one call as tenant B with A's ids and with unknown ids and compares the answers.
func compareAsB(t *testing.T, e *env, w *twoTenants, method, route string, c idCase, v variant) {
	t.Helper()
	rid := "isolation-" + uuid.NewString()
	aPath := fillPath(t, route, func(p string) string {
		id, ok := c.a[p]
		if !ok {
			t.Fatalf("route %s has a parameter :%s this test cannot fill", route, p)
		}
		return id
	})
	refPath := fillPath(t, route, func(p string) string {
		if id, ok := c.ref[p]; ok {
			return id
		}
		return uuid.NewString()
	})
	probes := e.probes.Load()
	got := e.do(t, method, aPath+v.query, w.keyB, v.body, "X-Request-ID", rid)
	probesA := e.probes.Load() - probes
	want := e.do(t, method, refPath+v.query, w.keyB, v.body, "X-Request-ID", rid)
	sameAnswer(t, got, want)
	if probesRef := e.probes.Load() - probes - probesA; probesA != probesRef {
		t.Errorf("A's ids made %d reachability probes, unknown ids %d", probesA, probesRef)
	}
}

// TestDeliveryListIgnoresAnotherTenantsEventID: there is no event filter on deliveries; an
// eventId naming A's event changes nothing in B's own list.
func TestDeliveryListIgnoresAnotherTenantsEventID(t *testing.T) {
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	e := newEnv(t, withClock(clock))
	w := newTwoTenants(t, e)
	list := "/api/v1/webhooks/" + w.hookB + "/deliveries"
	plain := e.do(t, http.MethodGet, list, w.keyB, nil, "X-Request-ID", "iso-list")
	if items, _ := listData(t, plain); len(items) != 2 {
		t.Fatalf("B's list has %d deliveries, want its test ping and its event's", len(items))
	}
	for _, q := range []string{"?eventId=" + w.evtA, "?eventId=" + w.evtB, "?eventId=evt_unknown", "?event_id=" + w.evtA} {
		t.Run(q, func(t *testing.T) {
			r := e.do(t, http.MethodGet, list+q, w.keyB, nil, "X-Request-ID", "iso-list")
			if r.status != plain.status || !bytes.Equal(r.body, plain.body) {
				t.Errorf("list%s = %d %s\nwant the unfiltered list %s", q, r.status, r.body, plain.body)
			}
			if bytes.Contains(r.body, []byte(w.didA)) || bytes.Contains(r.body, []byte(w.evtA)) {
				t.Errorf("B's list names A's delivery or event: %s", r.body)
			}
		})
	}
}

// TestIdempotencyKeyIsPerTenant: B publishing with the Idempotency-Key A used gets a new event
// of its own, answered exactly like a fresh key, and neither tenant's replay returns the other's.
func TestIdempotencyKeyIsPerTenant(t *testing.T) {
	e := newEnv(t)
	keyA, _ := e.newKey(t)
	keyB, _ := e.newKey(t)
	hookA := e.createWebhook(t, keyA, "scan.completed")["id"].(string)
	e.createWebhook(t, keyB, "scan.completed")
	first := data(t, e.publish(t, keyA, "scan.completed", "Idempotency-Key", "order-7"), http.StatusAccepted)
	deliveriesA := func() []any {
		items, _ := listData(t, e.do(t, http.MethodGet, "/api/v1/webhooks/"+hookA+"/deliveries", keyA, nil))
		return items
	}
	beforeA := deliveriesA()

	withAs := e.publish(t, keyB, "scan.completed", "Idempotency-Key", "order-7")
	fresh := e.publish(t, keyB, "scan.completed", "Idempotency-Key", "order-8")
	b1, b2 := data(t, withAs, http.StatusAccepted), data(t, fresh, http.StatusAccepted)
	if b1["id"] == first["id"] || b1["deliveries"] != float64(1) {
		t.Errorf("B's publish with A's key = %v, want a new event with B's one delivery", b1)
	}
	if withAs.status != fresh.status || b1["deliveries"] != b2["deliveries"] || b1["type"] != b2["type"] ||
		len(b1) != len(b2) {
		t.Errorf("A's key answered %d %v, a fresh key %d %v: they must look alike", withAs.status, b1, fresh.status, b2)
	}
	replays := []struct {
		name, key string
		want      map[string]any
	}{{"A's replay is A's event", keyA, first}, {"B's replay is B's event", keyB, b1}}
	for _, r := range replays {
		t.Run(r.name, func(t *testing.T) {
			d := data(t, e.publish(t, r.key, "scan.completed", "Idempotency-Key", "order-7"), http.StatusOK)
			if !reflect.DeepEqual(d, r.want) {
				t.Errorf("replay = %v, want %v", d, r.want)
			}
		})
	}
	if after := deliveriesA(); !reflect.DeepEqual(after, beforeA) {
		t.Errorf("A's deliveries changed from %v to %v", beforeA, after)
	}
	for _, u := range []struct {
		key  string
		want float64
	}{{keyA, 1}, {keyB, 2}} {
		if got := usage(t, e, u.key)["eventsPublished"]; got != u.want {
			t.Errorf("eventsPublished = %v, want %v", got, u.want)
		}
	}
}

// TestUsageAndQuotaArePerTenant: A spending its quota neither shows in B's usage nor stops
// B's publishing, and B's usage answer is byte for byte the same before and after A's events.
func TestUsageAndQuotaArePerTenant(t *testing.T) {
	e := newEnv(t)
	tidA, tidB := e.tenant(t, 2), e.tenant(t, 2)
	keyA, _ := e.key(t, registry.NewKeyParams{TenantID: tidA})
	keyB, _ := e.key(t, registry.NewKeyParams{TenantID: tidB})
	usageB := func() *response {
		return e.do(t, http.MethodGet, "/api/v1/usage", keyB, nil, "X-Request-ID", "iso-usage")
	}
	before := usageB()
	for range 2 {
		data(t, e.publish(t, keyA, "scan.completed"), http.StatusAccepted)
	}
	assertError(t, e.publish(t, keyA, "scan.completed"), http.StatusTooManyRequests, "QUOTA_EXCEEDED",
		"Monthly scan quota exceeded")
	if after := usageB(); after.status != before.status || !bytes.Equal(after.body, before.body) {
		t.Errorf("B's usage changed with A's events:\nbefore %s\nafter  %s", before.body, after.body)
	}
	data(t, e.publish(t, keyB, "scan.completed"), http.StatusAccepted)
	for _, u := range []struct {
		key       string
		published float64
	}{{keyA, 2}, {keyB, 1}} {
		got := usage(t, e, u.key)
		if got["eventsPublished"] != u.published || got["remaining"] != 2-u.published {
			t.Errorf("usage = %v, want %v published and %v remaining", got, u.published, 2-u.published)
		}
	}
}
