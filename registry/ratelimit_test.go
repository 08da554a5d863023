package registry_test

import (
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

func TestAllowRequest(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		// The limiter runs on Redis time (GCRA: one request per 12 s refills at 5/min), so five
		// calls in a row spend the burst well before any of it comes back.
		for i := 1; i <= 5; i++ {
			r, err := e.store.AllowRequest(ctx, "key_a", 5)
			if err != nil {
				t.Fatalf("AllowRequest %d: %v", i, err)
			}
			if !r.Allowed || r.Remaining != 5-i {
				t.Errorf("call %d = %+v, want allowed with %d remaining", i, r, 5-i)
			}
		}
		r, err := e.store.AllowRequest(ctx, "key_a", 5)
		if err != nil {
			t.Fatalf("AllowRequest 6: %v", err)
		}
		if r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 || r.ResetAfter <= 0 {
			t.Errorf("6th call = %+v, want refused with a positive RetryAfter", r)
		}
		// Another key has a budget of its own.
		if r, err := e.store.AllowRequest(ctx, "key_b", 5); err != nil || !r.Allowed || r.Remaining != 4 {
			t.Errorf("first call of another key = %+v, %v; want allowed with 4 remaining", r, err)
		}
	})
}
