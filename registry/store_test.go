package registry_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

func TestNewValidatesConfig(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { rdb.Close() })
	cases := []struct {
		name  string
		cfg   registry.Config
		valid bool
	}{
		{"defaults", registry.Config{Client: rdb}, true},
		{"no client", registry.Config{}, false},
		{"negative retention", registry.Config{Client: rdb, Retention: -time.Hour}, false},
		{"negative idempotency TTL", registry.Config{Client: rdb, IdempotencyTTL: -time.Hour}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := registry.New(c.cfg)
			if (err == nil) != c.valid || (s != nil) != c.valid {
				t.Errorf("New = %v, %v; want valid %v", s, err, c.valid)
			}
		})
	}
	s, err := registry.New(registry.Config{Client: rdb})
	if err != nil {
		t.Fatal(err)
	}
	if s.Client() != rdb {
		t.Error("Client() is not the configured client")
	}
	if d := time.Since(s.Now()); d < 0 || d > time.Hour {
		t.Errorf("default clock reads %v, want the wall clock", s.Now())
	}
}

// TestUnavailable proves a Redis that cannot be reached answers SERVICE_UNAVAILABLE, never a
// raw driver error, on both backends.
func TestUnavailable(t *testing.T) {
	backends := map[string]func(t *testing.T) string{
		"redis-server": func(t *testing.T) string {
			srv := registrytest.StartServer(t)
			srv.Stop()
			return srv.Addr
		},
		"embedded": func(t *testing.T) string {
			emb, err := registry.StartEmbedded("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			emb.Close()
			return emb.Addr()
		},
	}
	for name, addr := range backends {
		t.Run(name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: addr(t), MaxRetries: -1, DialTimeout: time.Second,
				DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
			t.Cleanup(func() { rdb.Close() })
			e := newEnv(t, rdb, registry.Config{})
			ctx := t.Context()
			key := registry.KeyPrefix + strings.Repeat("a", 48)
			ops := map[string]func() error{
				"Ping": func() error { return e.store.Ping(ctx) },
				"Tenant": func() error {
					_, err := e.store.Tenant(ctx, "t")
					return err
				},
				"Authenticate": func() error {
					_, err := lookup(ctx, e, key)
					return err
				},
				"PublishEvent": func() error {
					_, err := e.store.PublishEvent(ctx, "t", newEvent(e, registry.EventScanCompleted, "k", 0))
					return err
				},
				"Finish": func() error {
					_, err := e.store.Finish(ctx, registry.FinishRequest{TenantID: "t", EndpointID: "e",
						Outcomes: []registry.Outcome{{Item: registry.QueueItem{DeliveryID: "d"}, Outcome: registry.OutcomeFailure,
							Status: registry.DeliveryRetrying}}})
					return err
				},
				"Due": func() error {
					_, err := e.store.Due(ctx, "t", registry.Retry{DeliveryID: "d", EndpointID: "e", Run: 1})
					return err
				},
				"ListEndpoints": func() error {
					_, _, err := e.store.ListEndpoints(ctx, "t", "", registry.Page{Page: 1, Limit: 20})
					return err
				},
			}
			for op, call := range ops {
				t.Run(op, func(t *testing.T) { wantCode(t, call(), registry.CodeServiceUnavailable) })
			}
		})
	}
}

func TestParseWork(t *testing.T) {
	eid := "6b0c1d3e-1111-4222-8333-944455556666"
	did := registry.DeliveryID("evt_1", eid)
	cases := []struct {
		entry registry.OutboxEntry
		want  registry.Work
	}{
		{registry.FanoutEntry("evt_1"), registry.Work{Fanout: "evt_1"}},
		{registry.Drain{EndpointID: eid, N: 42}.OutboxEntry(), registry.Work{Drain: &registry.Drain{EndpointID: eid, N: 42}}},
		{registry.Retry{DeliveryID: did, EndpointID: eid, Generation: 12, Run: 3}.OutboxEntry(),
			registry.Work{Retry: &registry.Retry{DeliveryID: did, EndpointID: eid, Generation: 12, Run: 3}}},
		// A retry entry of an earlier version has no run.
		{registry.OutboxEntry("d:" + did + ":" + eid + ":12"),
			registry.Work{Retry: &registry.Retry{DeliveryID: did, EndpointID: eid, Generation: 12, Run: -1}}},
	}
	for _, c := range cases {
		got, ok := registry.ParseWork(c.entry)
		c.want.Entry = c.entry
		if !ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseWork(%q) = %+v, %v; want %+v", c.entry, got, ok, c.want)
		}
		if r := got.Retry; r != nil && r.OutboxEntry() != c.entry {
			t.Errorf("Retry %+v encodes as %q, want %q", r, r.OutboxEntry(), c.entry)
		}
	}
	for _, bad := range []registry.OutboxEntry{"", "e:", "q:a", "q:a:x", "d:a:b", "d:a:b:x", "d:a:b:1:x", "z:a"} {
		if w, ok := registry.ParseWork(bad); ok {
			t.Errorf("ParseWork(%q) = %+v, accepted", bad, w)
		}
	}
}

func TestIdempotencyTTL(t *testing.T) {
	eachBackend(t, registry.Config{IdempotencyTTL: 10 * time.Minute}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		if _, err := e.store.PublishEvent(t.Context(), tn.ID, newEvent(e, registry.EventScanCompleted, "remember-me", 0)); err != nil {
			t.Fatalf("PublishEvent: %v", err)
		}
		found := 0
		for key := range dumpDB(t, e.rdb) {
			if strings.HasSuffix(key, "remember-me") {
				found++
				if ttl := e.rdb.TTL(t.Context(), key).Val(); ttl <= 0 || ttl > 10*time.Minute {
					t.Errorf("TTL of the idempotency key %s = %v, want in (0, 10m]", key, ttl)
				}
			}
		}
		if found != 1 {
			t.Errorf("found %d idempotency keys, want 1", found)
		}
	})
}

func TestStats(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		st, err := e.store.Stats(t.Context())
		if err != nil || st != (registry.Stats{}) {
			t.Fatalf("Stats of an empty store = %+v, %v; want zeros", st, err)
		}
		t1, t2 := e.tenant(t, 0), e.tenant(t, 0)
		e.endpoint(t, t1.ID)
		e.autoDisabled(t, t1.ID) // 3 held deliveries
		gone := e.endpoint(t, t2.ID)
		e.endpoint(t, t2.ID)
		if err := e.store.DeleteEndpoint(t.Context(), t2.ID, gone.ID); err != nil {
			t.Fatalf("DeleteEndpoint: %v", err)
		}
		e.tenant(t, 0) // no endpoints
		st, err = e.store.Stats(t.Context())
		want := registry.Stats{Tenants: 3, Endpoints: 3, DisabledEndpoints: 1, HeldDeliveries: 3}
		if err != nil || st != want {
			t.Errorf("Stats = %+v, %v; want %+v", st, err, want)
		}
	})
}
