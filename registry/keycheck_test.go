package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// TestPublishKeyCheck: a key is known once Authenticate read it, and only with its own secret;
// a publish that carries its check counts the request against the key's limit and stores it,
// is refused without storing or counting anything against the quota once the limit is spent,
// and finds a key changed since it was read (suspended) without storing or counting anything.
func TestPublishKeyCheck(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		e.endpoint(t, tn.ID)
		own, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID,
			Scopes: []string{registry.ScopeEventsWrite}, RateLimitPerMinute: 2})
		if _, _, ok := e.store.KnownKey(plain); ok {
			t.Fatal("a key no request has read is known")
		}
		_, _, err := e.store.Authenticate(ctx, plain, 5) // 1 of 2
		wantNoErr(t, err)
		if _, _, ok := e.store.KnownKey(flip(plain, len(plain)-1)); ok {
			t.Error("another secret of a read key is known")
		}
		checked := func() (registry.NewBatch, *registry.KeyCheck) {
			k, check, ok := e.store.KnownKey(plain)
			if !ok || k.ID != own.ID || check.KeyID != own.ID {
				t.Fatalf("KnownKey = %+v, %+v, %v; want key %s", k, check, ok, own.ID)
			}
			check.Limit = 2
			b := e.newBatch(1, "")
			b.Key = check
			return b, check
		}

		b, check := checked()
		_, err = e.store.PublishEvents(ctx, tn.ID, b) // 2 of 2
		if err != nil || !check.Counted || !check.Rate.Allowed || check.Rate.Remaining != 0 || e.stored(t, tn.ID, b) != 1 {
			t.Fatalf("publish within the limit: %v, %+v, %d stored; want stored, 0 remaining", err, check, e.stored(t, tn.ID, b))
		}
		b, check = checked()
		_, err = e.store.PublishEvents(ctx, tn.ID, b)
		if err == nil || !check.Counted || check.Rate.Allowed || check.Rate.RetryAfter <= 0 || e.stored(t, tn.ID, b) != 0 {
			t.Fatalf("publish over the limit: %v, %+v, %d stored; want refused, nothing stored", err, check, e.stored(t, tn.ID, b))
		}
		b, check = checked()
		_, err = e.store.SetAPIKeyStatus(ctx, own.ID, registry.StatusSuspended)
		wantNoErr(t, err)
		_, err = e.store.PublishEvents(ctx, tn.ID, b)
		if !errors.Is(err, registry.ErrKeyChanged) || check.Counted || e.stored(t, tn.ID, b) != 0 {
			t.Errorf("publish of a key changed since read: %v, %+v; want ErrKeyChanged, nothing counted or stored", err, check)
		}
		if used := e.used(t, tn.ID); used != 1 {
			t.Errorf("usage %d, want 1 (the one publish stored)", used)
		}
	})
}

// TestPublishKeyChecksGroup: publishes of several keys in one script call are each counted
// against their own key's limit in their order, a key's requests with one read of its record,
// as Authenticate's groups count them; a key changed meanwhile fails its requests alone.
func TestPublishKeyChecksGroup(t *testing.T) {
	eachBackend(t, registry.Config{InlineFanout: 32}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		e.endpoint(t, tn.ID)
		keys := map[string]string{}
		for name, limit := range map[string]int{"a": 3, "b": 10, "c": 10} {
			_, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID,
				Scopes: []string{registry.ScopeEventsWrite}, RateLimitPerMinute: limit})
			keys[name] = plain
		}
		gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{})}
		s := gated(t, e, gate, func(s *registry.Store) error {
			for _, plain := range keys { // counts 1 of each key
				if _, _, err := s.Authenticate(ctx, plain, 5); err != nil {
					return err
				}
			}
			_, err := s.PublishEvents(ctx, tn.ID, e.newBatch(1, "")) // loads the script
			return err
		})
		s.SetGroupWait(time.Minute)
		publish := func(b registry.NewBatch) chan publishOutcome {
			out := make(chan publishOutcome, 1)
			go func() {
				sb, err := s.PublishEvents(ctx, tn.ID, b)
				out <- publishOutcome{sb, err}
			}()
			return out
		}
		withKey := func(name string) (registry.NewBatch, *registry.KeyCheck) {
			k, check, ok := s.KnownKey(keys[name])
			if !ok {
				t.Fatalf("key %s is not known", name)
			}
			check.Limit = k.RateLimitPerMinute
			b := e.newBatch(1, "")
			b.Key = check
			return b, check
		}
		held := publish(e.newBatch(1, ""))
		<-gate.entered
		names := []string{"a", "b", "a", "a", "c"}
		var line []registry.NewBatch
		var checks []*registry.KeyCheck
		var outs []chan publishOutcome
		for i, name := range names {
			b, check := withKey(name)
			line, checks = append(line, b), append(checks, check)
			outs = append(outs, publish(b))
			waitFor(t, gate, func() bool { return s.PublishWaiting(tn.ID, 0) == i+1 })
		}
		cid := ""
		if k, _, _ := s.KnownKey(keys["c"]); k != nil {
			cid = k.ID
		}
		_, err := e.store.SetAPIKeyStatus(ctx, cid, registry.StatusRevoked)
		wantNoErr(t, err)
		close(gate.release)
		wantNoErr(t, (<-held).err)
		want := []struct {
			allowed   bool
			remaining int
		}{{true, 1}, {true, 8}, {true, 0}, {false, 0}}
		for i, out := range outs {
			o, check := <-out, checks[i]
			stored := e.stored(t, tn.ID, line[i])
			if i == 4 {
				if !errors.Is(o.err, registry.ErrKeyChanged) || check.Counted || stored != 0 {
					t.Errorf("publish %d (key revoked meanwhile): %v, %+v, %d stored; want ErrKeyChanged", i, o.err, check, stored)
				}
				continue
			}
			w := want[i]
			if !check.Counted || check.Rate.Allowed != w.allowed || check.Rate.Remaining != w.remaining ||
				(o.err == nil) != w.allowed || stored != map[bool]int{true: 1}[w.allowed] {
				t.Errorf("publish %d of key %s: %v, %+v, %d stored; want allowed %v with %d remaining",
					i, names[i], o.err, check, stored, w.allowed, w.remaining)
			}
		}
		if n := gate.scripts.Load(); n != 2 {
			t.Errorf("%d script calls, want 2 (the held publish, then the line)", n)
		}
	})
}
