package registry_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

func TestCreateAndGetEndpoint(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		secret := newSecret(t)
		n := registry.NewEndpoint{URL: "https://hooks.example.test/in", Description: "prod",
			Events:  []string{registry.EventScanFailed, registry.EventScanCompleted, registry.EventScanFailed},
			Headers: map[string]string{"X-Team": "sec"}, Secret: secret}
		created, err := e.store.CreateEndpoint(t.Context(), tn.ID, n)
		if err != nil {
			t.Fatalf("CreateEndpoint: %v", err)
		}
		got := e.getEndpoint(t, tn.ID, created.ID)
		for name, ep := range map[string]*registry.Endpoint{"created": created, "read back": got} {
			if ep.ID == "" || ep.TenantID != tn.ID || ep.URL != n.URL || ep.Description != "prod" || ep.Secret != secret ||
				!ep.Enabled || ep.Status != registry.StatusActive || ep.DisabledReason != nil || ep.DisabledAt != nil ||
				ep.ConsecutiveFailures != 0 || !ep.CreatedAt.Equal(start) || !ep.UpdatedAt.Equal(start) ||
				ep.PrevSecret != "" {
				t.Errorf("%s endpoint = %+v", name, ep)
			}
			if want := []string{registry.EventScanFailed, registry.EventScanCompleted}; !slices.Equal(ep.Events, want) {
				t.Errorf("%s Events = %v, want %v (duplicates folded)", name, ep.Events, want)
			}
			if !maps.Equal(ep.Headers, n.Headers) {
				t.Errorf("%s Headers = %v, want %v", name, ep.Headers, n.Headers)
			}
		}
		if got.ID != created.ID {
			t.Errorf("read back id %s, want %s", got.ID, created.ID)
		}
		noHeaders := e.endpoint(t, tn.ID)
		if h := e.getEndpoint(t, tn.ID, noHeaders.ID).Headers; h == nil || len(h) != 0 {
			t.Errorf("Headers of an endpoint created without headers = %#v, want an empty map", h)
		}
	})
}

func endpointIDs(eps []*registry.Endpoint) []string {
	out := make([]string, 0, len(eps))
	for _, ep := range eps {
		out = append(out, ep.ID)
	}
	return out
}

func TestListEndpoints(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		var created []string // oldest first
		for range 5 {
			e.clock.Advance(time.Second)
			created = append(created, e.endpoint(t, tn.ID).ID)
		}
		e.endpoint(t, e.tenant(t, 0).ID) // another tenant's
		for _, i := range []int{1, 3} {
			if _, err := e.store.DisableEndpoint(ctx, tn.ID, created[i], registry.ReasonManual); err != nil {
				t.Fatalf("DisableEndpoint: %v", err)
			}
		}
		c := created
		cases := []struct {
			name      string
			status    string
			page      registry.Page
			want      []string
			wantTotal int
		}{
			{"all newest first", "", registry.Page{Page: 1, Limit: 20}, []string{c[4], c[3], c[2], c[1], c[0]}, 5},
			{"first page", "", registry.Page{Page: 1, Limit: 2}, []string{c[4], c[3]}, 5},
			{"last partial page", "", registry.Page{Page: 3, Limit: 2}, []string{c[0]}, 5},
			{"past the end", "", registry.Page{Page: 4, Limit: 2}, nil, 5},
			{"far past the end", "", registry.Page{Page: 1000, Limit: 100}, nil, 5},
			{"active", registry.StatusActive, registry.Page{Page: 1, Limit: 20}, []string{c[4], c[2], c[0]}, 3},
			{"active second page", registry.StatusActive, registry.Page{Page: 2, Limit: 2}, []string{c[0]}, 3},
			{"disabled", registry.StatusDisabled, registry.Page{Page: 1, Limit: 20}, []string{c[3], c[1]}, 2},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				eps, total, err := e.store.ListEndpoints(ctx, tn.ID, tc.status, tc.page)
				if err != nil {
					t.Fatalf("ListEndpoints: %v", err)
				}
				if got := endpointIDs(eps); !slices.Equal(got, tc.want) || total != tc.wantTotal {
					t.Errorf("ListEndpoints = %v (total %d), want %v (total %d)", got, total, tc.want, tc.wantTotal)
				}
			})
		}
	})
}

func subscribed(t *testing.T, e *env, tid, typ string) []string {
	t.Helper()
	eps, err := e.store.SubscribedEndpoints(t.Context(), tid, typ)
	if err != nil {
		t.Fatalf("SubscribedEndpoints: %v", err)
	}
	got := endpointIDs(eps)
	slices.Sort(got)
	return got
}

func TestUpdateEndpoint(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID, registry.EventScanStarted, registry.EventScanCompleted)
		ep.Headers = map[string]string{"X-A": "1"}
		if _, _, err := e.store.UpdateEndpoint(ctx, tn.ID, ep.ID, registry.EndpointPatch{Headers: ep.Headers, HeadersSet: true}); err != nil {
			t.Fatalf("UpdateEndpoint(headers): %v", err)
		}
		other := e.endpoint(t, tn.ID, registry.EventScanStarted)

		at := e.clock.Advance(time.Hour)
		url, desc := "https://hooks.example.test/v2", "moved"
		up, _, err := e.store.UpdateEndpoint(ctx, tn.ID, ep.ID, registry.EndpointPatch{URL: &url, Description: &desc,
			Events: []string{registry.EventScanCompleted, registry.EventScanFailed, registry.EventScanFailed}})
		if err != nil {
			t.Fatalf("UpdateEndpoint: %v", err)
		}
		got := e.getEndpoint(t, tn.ID, ep.ID)
		for name, g := range map[string]*registry.Endpoint{"returned": up, "stored": got} {
			if g.URL != url || g.Description != desc || !g.UpdatedAt.Equal(at) || !g.CreatedAt.Equal(start) ||
				g.Secret != ep.Secret || !g.Enabled {
				t.Errorf("%s endpoint = %+v", name, g)
			}
			if want := []string{registry.EventScanCompleted, registry.EventScanFailed}; !slices.Equal(g.Events, want) {
				t.Errorf("%s Events = %v, want %v", name, g.Events, want)
			}
			if !maps.Equal(g.Headers, ep.Headers) {
				t.Errorf("%s Headers = %v, want them unchanged %v", name, g.Headers, ep.Headers)
			}
		}
		subs := map[string][]string{
			registry.EventScanStarted:   {other.ID},
			registry.EventScanCompleted: {ep.ID},
			registry.EventScanFailed:    {ep.ID},
			registry.EventScanCancelled: nil,
		}
		for typ, want := range subs {
			if got := subscribed(t, e, tn.ID, typ); !slices.Equal(got, want) {
				t.Errorf("SubscribedEndpoints(%s) = %v, want %v", typ, got, want)
			}
		}

		if _, _, err := e.store.UpdateEndpoint(ctx, tn.ID, ep.ID, registry.EndpointPatch{HeadersSet: true}); err != nil {
			t.Fatalf("UpdateEndpoint(clear headers): %v", err)
		}
		got = e.getEndpoint(t, tn.ID, ep.ID)
		if len(got.Headers) != 0 || got.URL != url || got.Description != desc || len(got.Events) != 2 {
			t.Errorf("after clearing headers: %+v, want no headers and the rest unchanged", got)
		}
	})
}

func TestDeleteEndpoint(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		keep := e.endpoint(t, tn.ID, registry.EventScanCompleted)
		gone := e.endpoint(t, tn.ID, registry.EventScanCompleted, registry.EventScanFailed)
		ev := e.publish(t, tn.ID, registry.EventScanCompleted)
		e.fanout(t, ev, keep.ID, gone.ID)
		if err := e.store.DeleteEndpoint(ctx, tn.ID, gone.ID); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		_, err := e.store.Endpoint(ctx, tn.ID, gone.ID)
		wantCode(t, err, registry.CodeWebhookNotFound)
		wantCode(t, e.store.DeleteEndpoint(ctx, tn.ID, gone.ID), registry.CodeWebhookNotFound)
		eps, total, err := e.store.ListEndpoints(ctx, tn.ID, "", registry.Page{Page: 1, Limit: 20})
		if err != nil || total != 1 || !slices.Equal(endpointIDs(eps), []string{keep.ID}) {
			t.Errorf("ListEndpoints after delete = %v (total %d), %v; want only %s", endpointIDs(eps), total, err, keep.ID)
		}
		for _, typ := range []string{registry.EventScanCompleted, registry.EventScanFailed} {
			if got := subscribed(t, e, tn.ID, typ); slices.Contains(got, gone.ID) {
				t.Errorf("SubscribedEndpoints(%s) = %v still holds the deleted endpoint", typ, got)
			}
		}
		dl, total, err := e.store.ListDeliveries(ctx, tn.ID, gone.ID, "", registry.Page{Page: 1, Limit: 20})
		if err != nil || total != 0 || len(dl) != 0 {
			t.Errorf("ListDeliveries of a deleted endpoint = %d (total %d), %v; want none", len(dl), total, err)
		}
		// A drain of the deleted endpoint finds nothing to send.
		items, ep, err := e.store.Take(ctx, registry.TakeRequest{TenantID: tn.ID, EndpointID: gone.ID, N: 99, Limit: 10})
		if err != nil || len(items) != 0 || ep != nil {
			t.Errorf("Take of a deleted endpoint = %d items, endpoint %v, %v; want none", len(items), ep, err)
		}
		// The survivor is untouched.
		if got := e.getEndpoint(t, tn.ID, keep.ID); !got.Enabled {
			t.Errorf("surviving endpoint = %+v", got)
		}
	})
}

// TestEndpointOfAnotherTenant proves every endpoint operation answers WEBHOOK_NOT_FOUND for an
// id that belongs to another tenant, and leaves that endpoint alone.
func TestEndpointOfAnotherTenant(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		owner, intruder := e.tenant(t, 0), e.tenant(t, 0)
		ep := e.endpoint(t, owner.ID)
		url := "https://evil.example.test/"
		ops := map[string]func() error{
			"Endpoint": func() error { _, err := e.store.Endpoint(ctx, intruder.ID, ep.ID); return err },
			"UpdateEndpoint": func() error {
				_, _, err := e.store.UpdateEndpoint(ctx, intruder.ID, ep.ID, registry.EndpointPatch{URL: &url})
				return err
			},
			"DeleteEndpoint": func() error { return e.store.DeleteEndpoint(ctx, intruder.ID, ep.ID) },
			"RotateSecret": func() error {
				_, err := e.store.RotateSecret(ctx, intruder.ID, ep.ID, newSecret(t), time.Hour)
				return err
			},
			"DisableEndpoint": func() error {
				_, err := e.store.DisableEndpoint(ctx, intruder.ID, ep.ID, registry.ReasonManual)
				return err
			},
			"EnableEndpoint": func() error { _, err := e.store.EnableEndpoint(ctx, intruder.ID, ep.ID); return err },
		}
		for name, op := range ops {
			t.Run(name, func(t *testing.T) { wantCode(t, op(), registry.CodeWebhookNotFound) })
		}
		got := e.getEndpoint(t, owner.ID, ep.ID)
		if got.URL != ep.URL || got.Secret != ep.Secret || !got.Enabled {
			t.Errorf("owner's endpoint changed: %+v", got)
		}
		eps, total, err := e.store.ListEndpoints(ctx, intruder.ID, "", registry.Page{Page: 1, Limit: 20})
		if err != nil || total != 0 || len(eps) != 0 {
			t.Errorf("intruder's ListEndpoints = %d (total %d), %v; want none", len(eps), total, err)
		}
	})
}

func TestRotateSecret(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		old := ep.Secret

		rotatedAt := e.clock.Advance(time.Minute)
		fresh := newSecret(t)
		got, err := e.store.RotateSecret(ctx, tn.ID, ep.ID, fresh, time.Hour)
		if err != nil {
			t.Fatalf("RotateSecret: %v", err)
		}
		if got.Secret != fresh || got.PrevSecret != old || !got.PrevSecretExpiresAt.Equal(rotatedAt.Add(time.Hour)) ||
			!got.UpdatedAt.Equal(rotatedAt) {
			t.Fatalf("after RotateSecret: %+v", got)
		}
		stored := e.getEndpoint(t, tn.ID, ep.ID)
		for _, c := range []struct {
			at   time.Duration
			want []string
		}{
			{0, []string{fresh, old}},
			{59 * time.Minute, []string{fresh, old}},
			{time.Hour - time.Millisecond, []string{fresh, old}},
			{time.Hour, []string{fresh}},
			{25 * time.Hour, []string{fresh}},
		} {
			if s := stored.SigningSecrets(rotatedAt.Add(c.at)); !slices.Equal(s, c.want) {
				t.Errorf("SigningSecrets(rotation+%v) = %d secrets, want %d", c.at, len(s), len(c.want))
			}
		}

		// Grace 0: the replaced secret stops signing at once; an older one keeps its own grace.
		e.clock.Advance(time.Minute)
		third := newSecret(t)
		if _, err := e.store.RotateSecret(ctx, tn.ID, ep.ID, third, 0); err != nil {
			t.Fatalf("RotateSecret(grace 0): %v", err)
		}
		stored = e.getEndpoint(t, tn.ID, ep.ID)
		if s := stored.SigningSecrets(e.clock.Now()); !slices.Equal(s, []string{third, old}) {
			t.Errorf("after a rotation without grace: %d signing secrets; want the new one and the first", len(s))
		}
		if s := stored.SigningSecrets(rotatedAt.Add(time.Hour)); !slices.Equal(s, []string{third}) {
			t.Errorf("after the first grace: %d signing secrets; want only the new one", len(s))
		}

		_, err = e.store.RotateSecret(ctx, tn.ID, "no-such-endpoint", newSecret(t), time.Hour)
		wantCode(t, err, registry.CodeWebhookNotFound)
	})
}

// TestSecondRotationKeepsOlderGrace: every replaced secret signs until its own grace ends, and
// at most three secrets sign at once (a fourth rotation drops the one whose grace ends first).
func TestSecondRotationKeepsOlderGrace(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		ep := e.endpoint(t, tn.ID)
		s0 := ep.Secret
		t0 := e.clock.Now()
		s1, s2, s3 := newSecret(t), newSecret(t), newSecret(t)
		rotate := func(secret string, grace time.Duration) {
			t.Helper()
			if _, err := e.store.RotateSecret(ctx, tn.ID, ep.ID, secret, grace); err != nil {
				t.Fatalf("RotateSecret: %v", err)
			}
		}
		rotate(s1, 24*time.Hour) // s0 signs until t0+24h
		e.clock.Advance(time.Minute)
		rotate(s2, time.Hour) // s1 signs until t0+1m+1h
		stored := e.getEndpoint(t, tn.ID, ep.ID)
		for _, c := range []struct {
			at   time.Duration
			want []string
		}{
			{time.Minute, []string{s2, s1, s0}},
			{time.Hour, []string{s2, s1, s0}},
			{time.Hour + time.Minute, []string{s2, s0}},
			{24*time.Hour - time.Millisecond, []string{s2, s0}},
			{24 * time.Hour, []string{s2}},
		} {
			if got := stored.SigningSecrets(t0.Add(c.at)); !slices.Equal(got, c.want) {
				t.Errorf("SigningSecrets(t0+%v) = %d secrets %v, want %d", c.at, len(got), secretIndex(got, s0, s1, s2), len(c.want))
			}
		}
		e.clock.Advance(time.Minute)
		rotate(s3, 2*time.Hour) // s2 signs until t0+2m+2h; s1 (ends first) is dropped
		stored = e.getEndpoint(t, tn.ID, ep.ID)
		if got := stored.SigningSecrets(e.clock.Now()); !slices.Equal(got, []string{s3, s2, s0}) {
			t.Errorf("after a third rotation: %d secrets %v, want s3, s2, s0", len(got), secretIndex(got, s0, s1, s2, s3))
		}
	})
}

// secretIndex names secrets by their position in all ("s0", "s1", ...) so failures never print them.
func secretIndex(got []string, all ...string) []string {
	out := make([]string, len(got))
	for i, g := range got {
		out[i] = "?"
		for j, a := range all {
			if g == a {
				out[i] = "s" + string(rune('0'+j))
			}
		}
	}
	return out
}
