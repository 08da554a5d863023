package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/redis/go-redis/v9"
)

var keyFormat = regexp.MustCompile(`^cix_sk_[0-9A-Za-z]{48}$`)

func (e *env) apiKey(t *testing.T, p registry.NewKeyParams) (*registry.APIKey, string) {
	t.Helper()
	if p.Scopes == nil {
		p.Scopes = []string{registry.ScopeWebhooksRead}
	}
	k, plain, err := e.store.CreateAPIKey(t.Context(), p)
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return k, plain
}

func TestCreateAndAuthenticateAPIKey(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		exp := start.Add(90 * 24 * time.Hour)
		k1, plain1 := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID, Name: "ci",
			Scopes:           []string{registry.ScopeEventsWrite, registry.ScopeWebhooksRead, registry.ScopeEventsWrite},
			AllowedScanTypes: []string{"zap", "nmap"}, AllowedIPAddresses: []string{"203.0.113.7", "2001:db8::/32"},
			ExpiresAt: &exp, RateLimitPerMinute: 60})
		k2, plain2 := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID})
		for _, p := range []string{plain1, plain2} {
			if !keyFormat.MatchString(p) {
				t.Errorf("plain key %q does not match %v", p, keyFormat)
			}
		}
		if plain1 == plain2 || k1.ID == k2.ID {
			t.Fatalf("two keys are the same: %q/%s and %q/%s", plain1, k1.ID, plain2, k2.ID)
		}

		got, err := lookup(t.Context(), e, plain1)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if got.ID != k1.ID || got.TenantID != tn.ID || got.Name != "ci" || got.Status != registry.StatusActive ||
			got.RateLimitPerMinute != 60 || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
			t.Errorf("Authenticate = %+v, want key %s of tenant %s", got, k1.ID, tn.ID)
		}
		if want := []string{registry.ScopeEventsWrite, registry.ScopeWebhooksRead}; !slices.Equal(got.Scopes, want) {
			t.Errorf("Scopes = %v, want %v (duplicates folded)", got.Scopes, want)
		}
		if !got.AllowsScanType("zap") || got.AllowsScanType("trivy") || !got.HasScope(registry.ScopeEventsWrite) ||
			got.HasScope(registry.ScopeWebhooksWrite) {
			t.Errorf("key %+v grants the wrong scopes or scan types", got)
		}
		if want := []string{"203.0.113.7", "2001:db8::/32"}; !slices.Equal(got.AllowedIPAddresses, want) {
			t.Errorf("AllowedIPAddresses = %v, want %v", got.AllowedIPAddresses, want)
		}
		if got2, err := lookup(t.Context(), e, plain2); err != nil || got2.ID != k2.ID {
			t.Errorf("Authenticate(second key) = %v, %v; want %s", got2, err, k2.ID)
		}
	})
}

// lookup authenticates plain with a default limit no test of the key itself reaches.
func lookup(ctx context.Context, e *env, plain string) (*registry.APIKey, error) {
	k, _, err := e.store.Authenticate(ctx, plain, 1000)
	return k, err
}

// TestAuthenticateCountsRequests: one round trip reads the key and counts the request against
// its own per-minute limit, or the default; a wrong secret or an unknown key counts against
// nothing; a key the caller will refuse (revoked) still comes back with the decision.
func TestAuthenticateCountsRequests(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		own, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID, RateLimitPerMinute: 3})
		_, other := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID})
		counted := &commandCount{}
		c := redis.NewClient(e.rdb.(*redis.Client).Options())
		t.Cleanup(func() { c.Close() })
		c.AddHook(counted)
		s, err := registry.New(registry.Config{Client: c, Now: e.clock.Now})
		wantNoErr(t, err)
		for range 2 {
			_, _, err := s.Authenticate(ctx, flip(plain, len(plain)-1), 5)
			wantCode(t, err, registry.CodeInvalidAPIKey)
		}
		for i := 1; i <= 3; i++ {
			before := counted.n.Load()
			k, r, err := s.Authenticate(ctx, plain, 5)
			wantNoErr(t, err)
			if k.ID != own.ID || !r.Allowed || r.Remaining != 3-i || r.ResetAfter <= 0 {
				t.Errorf("request %d = %s, %+v; want %s allowed with %d remaining", i, k.ID, r, own.ID, 3-i)
			}
			if n := counted.n.Load() - before; i > 1 && n != 1 {
				t.Errorf("request %d took %d commands, want one round trip", i, n)
			}
		}
		k, r, err := s.Authenticate(ctx, plain, 5)
		wantNoErr(t, err)
		if k.ID != own.ID || r.Allowed || r.Remaining != 0 || r.RetryAfter <= 0 {
			t.Errorf("4th request = %+v, want refused with a positive RetryAfter", r)
		}
		if _, r, err := s.Authenticate(ctx, other, 5); err != nil || !r.Allowed || r.Remaining != 4 {
			t.Errorf("a key without a limit of its own = %+v, %v; want the default's 4 remaining", r, err)
		}
		_, err = e.store.SetAPIKeyStatus(ctx, own.ID, registry.StatusRevoked)
		wantNoErr(t, err)
		if k, r, err := s.Authenticate(ctx, plain, 5); err != nil || k.Status != registry.StatusRevoked || r.Allowed {
			t.Errorf("revoked key = %+v, %+v, %v; want its record (revoked) and the spent budget", k, r, err)
		}
	})
}

// commandCount counts the commands a client sends.
type commandCount struct{ n atomic.Int64 }

func (h *commandCount) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *commandCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *commandCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// flip returns s with the byte at i replaced by a different base62 character.
func flip(s string, i int) string {
	c := byte('a')
	if s[i] == 'a' {
		c = 'b'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestAuthenticateRejects(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		_, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID})
		cases := []struct{ name, key string }{
			{"secret character changed", flip(plain, len(plain)-1)},
			{"first secret character changed", flip(plain, len(registry.KeyPrefix)+16)},
			{"id character changed", flip(plain, len(registry.KeyPrefix))},
			{"one character short", plain[:len(plain)-1]},
			{"one character long", plain + "a"},
			{"wrong prefix", "cix_pk_" + strings.TrimPrefix(plain, registry.KeyPrefix)},
			{"no prefix", strings.TrimPrefix(plain, registry.KeyPrefix)},
			{"prefix in upper case", strings.ToUpper(registry.KeyPrefix) + strings.TrimPrefix(plain, registry.KeyPrefix)},
			{"non-base62 character", plain[:len(plain)-1] + "-"},
			{"non-base62 in id", plain[:len(registry.KeyPrefix)] + "_" + plain[len(registry.KeyPrefix)+1:]},
			{"trailing newline", plain + "\n"},
			{"prefix only", registry.KeyPrefix},
			{"empty", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				k, err := lookup(t.Context(), e, c.key)
				if k != nil {
					t.Errorf("Authenticate(%q) returned key %s", c.key, k.ID)
				}
				wantCode(t, err, registry.CodeInvalidAPIKey)
			})
		}
	})
}

// TestAPIKeyStoredAsHashOnly creates keys of every kind, uses them (lookup, rate limit, status
// changes, a tenant suspended and resumed, which rewrites every key's copy of the tenant), then
// reads every key and value in the database and proves no plain key and no secret part is
// anywhere, while each key's SHA-256 hash is.
func TestAPIKeyStoredAsHashOnly(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 100)
		exp := start.Add(time.Hour)
		params := []registry.NewKeyParams{
			{TenantID: tn.ID, Name: "hash-only"},
			{TenantID: tn.ID, Name: "everything", Scopes: registry.Scopes, AllowedScanTypes: []string{"zap"},
				AllowedIPAddresses: []string{"203.0.113.0/24"}, ExpiresAt: &exp, RateLimitPerMinute: 60},
			{TenantID: tn.ID, Name: "to suspend"},
			{TenantID: tn.ID, Name: "to revoke"},
			{TenantID: e.tenant(t, 0).ID, Name: "other tenant"},
		}
		var plains []string
		for i, p := range params {
			k, plain := e.apiKey(t, p)
			plains = append(plains, plain)
			if _, err := lookup(ctx, e, plain); err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if _, err := e.store.AllowRequest(ctx, k.ID, 10); err != nil {
				t.Fatalf("AllowRequest: %v", err)
			}
			switch i {
			case 2:
				_, err := e.store.SetAPIKeyStatus(ctx, k.ID, registry.StatusSuspended)
				wantNoErr(t, err)
			case 3:
				_, err := e.store.SetAPIKeyStatus(ctx, k.ID, registry.StatusRevoked)
				wantNoErr(t, err)
			}
		}
		for _, st := range []string{registry.StatusSuspended, registry.StatusActive} {
			_, err := e.store.SetTenantStatus(ctx, tn.ID, st)
			wantNoErr(t, err)
		}
		registrytest.CheckKeysHashedOnly(t, dumpDB(t, e.rdb), plains...)
	})
}

func wantNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTenantStatusReachesEveryKey: the API reads a tenant's status and quota from the key's
// copy, so suspending or resuming a tenant must rewrite every one of its keys before it returns.
func TestTenantStatusReachesEveryKey(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn, other := e.tenant(t, 7), e.tenant(t, 0)
		var plains []string
		for range 3 {
			_, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID})
			plains = append(plains, plain)
		}
		_, otherPlain := e.apiKey(t, registry.NewKeyParams{TenantID: other.ID})
		for _, st := range []string{registry.StatusSuspended, registry.StatusActive, registry.StatusSuspended} {
			_, err := e.store.SetTenantStatus(ctx, tn.ID, st)
			wantNoErr(t, err)
			for _, plain := range plains {
				k, err := lookup(ctx, e, plain)
				wantNoErr(t, err)
				if k.TenantStatus != st || k.TenantQuota != 7 {
					t.Errorf("after SetTenantStatus(%s) key %s carries status %q quota %d, want %s and 7",
						st, k.ID, k.TenantStatus, k.TenantQuota, st)
				}
			}
			if k, err := lookup(ctx, e, otherPlain); err != nil || k.TenantStatus != registry.StatusActive {
				t.Errorf("another tenant's key = %+v, %v; want it untouched (active)", k, err)
			}
		}
	})
}

func TestSetAPIKeyStatus(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		tn := e.tenant(t, 0)
		k, plain := e.apiKey(t, registry.NewKeyParams{TenantID: tn.ID})
		for _, st := range []string{registry.StatusSuspended, registry.StatusActive, registry.StatusRevoked} {
			e.clock.Advance(time.Minute)
			got, err := e.store.SetAPIKeyStatus(ctx, k.ID, st)
			if err != nil {
				t.Fatalf("SetAPIKeyStatus(%s): %v", st, err)
			}
			// Lookup still finds the key: the caller checks status in the contract's order.
			looked, err := lookup(ctx, e, plain)
			if err != nil {
				t.Fatalf("Authenticate after %s: %v", st, err)
			}
			if got.Status != st || looked.Status != st || !looked.UpdatedAt.Equal(e.clock.Now()) {
				t.Errorf("after SetAPIKeyStatus(%s): returned %s, stored %s updated %v", st, got.Status, looked.Status, looked.UpdatedAt)
			}
		}
		for _, st := range []string{registry.StatusActive, registry.StatusSuspended} {
			if _, err := e.store.SetAPIKeyStatus(ctx, k.ID, st); err == nil {
				t.Errorf("SetAPIKeyStatus(revoked → %s) succeeded, want an error", st)
			}
		}
		if got, err := e.store.APIKey(ctx, k.ID); err != nil || got.Status != registry.StatusRevoked {
			t.Errorf("APIKey after resume attempts = %v, %v; want revoked", got, err)
		}
		if _, err := e.store.SetAPIKeyStatus(ctx, "key_unknown", registry.StatusRevoked); !errors.Is(err, registry.ErrKeyNotFound) {
			t.Errorf("SetAPIKeyStatus(unknown) err = %v, want ErrKeyNotFound", err)
		}
		if _, err := e.store.APIKey(ctx, "key_unknown"); !errors.Is(err, registry.ErrKeyNotFound) {
			t.Errorf("APIKey(unknown) err = %v, want ErrKeyNotFound", err)
		}
		if _, err := e.store.SetAPIKeyStatus(ctx, k.ID, "expired"); err == nil {
			t.Error(`SetAPIKeyStatus("expired") succeeded, want an error`)
		}
	})
}

func TestListAPIKeys(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		a, b := e.tenant(t, 0), e.tenant(t, 0)
		var wantA []string
		for range 3 {
			e.clock.Advance(time.Second)
			k, _ := e.apiKey(t, registry.NewKeyParams{TenantID: a.ID})
			wantA = append(wantA, k.ID)
		}
		kb, _ := e.apiKey(t, registry.NewKeyParams{TenantID: b.ID})
		for _, c := range []struct {
			tenant string
			want   []string
		}{{a.ID, wantA}, {b.ID, []string{kb.ID}}, {e.tenant(t, 0).ID, nil}} {
			keys, err := e.store.ListAPIKeys(t.Context(), c.tenant)
			if err != nil {
				t.Fatalf("ListAPIKeys: %v", err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, k.ID)
				if k.TenantID != c.tenant {
					t.Errorf("ListAPIKeys(%s) returned key %s of tenant %s", c.tenant, k.ID, k.TenantID)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("ListAPIKeys(%s) = %v, want %v (oldest first)", c.tenant, got, c.want)
			}
		}
	})
}

func TestNewKeyParamsValidate(t *testing.T) {
	ok := registry.NewKeyParams{TenantID: "t", Scopes: []string{registry.ScopeWebhooksRead}}
	cases := []struct {
		name   string
		change func(p *registry.NewKeyParams)
		valid  bool
	}{
		{"minimal", func(p *registry.NewKeyParams) {}, true},
		{"everything", func(p *registry.NewKeyParams) {
			p.Scopes = registry.Scopes
			p.AllowedScanTypes = registry.ScanTypes
			p.AllowedIPAddresses = []string{"203.0.113.7", "198.51.100.0/24", "::1", "2001:db8::/32"}
			p.RateLimitPerMinute = 600
		}, true},
		{"no scopes", func(p *registry.NewKeyParams) { p.Scopes = nil }, false},
		{"unknown scope", func(p *registry.NewKeyParams) { p.Scopes = []string{"webhooks:admin"} }, false},
		{"scope in wrong case", func(p *registry.NewKeyParams) { p.Scopes = []string{"Webhooks:read"} }, false},
		{"unknown scan type", func(p *registry.NewKeyParams) { p.AllowedScanTypes = []string{"zap", "burp"} }, false},
		{"bad IP", func(p *registry.NewKeyParams) { p.AllowedIPAddresses = []string{"203.0.113.300"} }, false},
		{"hostname as IP", func(p *registry.NewKeyParams) { p.AllowedIPAddresses = []string{"example.com"} }, false},
		{"bad CIDR prefix", func(p *registry.NewKeyParams) { p.AllowedIPAddresses = []string{"10.0.0.0/33"} }, false},
		{"bad CIDR address", func(p *registry.NewKeyParams) { p.AllowedIPAddresses = []string{"10.0.0/8"} }, false},
		{"empty IP", func(p *registry.NewKeyParams) { p.AllowedIPAddresses = []string{""} }, false},
		{"negative rate limit", func(p *registry.NewKeyParams) { p.RateLimitPerMinute = -1 }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ok
			c.change(&p)
			err := p.Validate()
			if got := err == nil; got != c.valid {
				t.Errorf("Validate() = %v, want valid %v", err, c.valid)
			}
		})
	}
}

func TestCreateAPIKeyValidates(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		_, _, err := e.store.CreateAPIKey(t.Context(), registry.NewKeyParams{TenantID: tn.ID, Scopes: []string{"root"}})
		if err == nil {
			t.Fatal("CreateAPIKey with an unknown scope succeeded")
		}
		if keys, err := e.store.ListAPIKeys(t.Context(), tn.ID); err != nil || len(keys) != 0 {
			t.Errorf("ListAPIKeys after a rejected create = %d keys, %v; want none", len(keys), err)
		}
	})
}

// pauseHook holds the first command named name whose key contains part until release is
// closed, and closes reached when it gets there.
type pauseHook struct {
	name, part       string
	once             sync.Once
	reached, release chan struct{}
}

func (h *pauseHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *pauseHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == h.name && len(args) > 1 && strings.Contains(fmt.Sprint(args[1]), h.part) {
			h.once.Do(func() {
				close(h.reached)
				<-h.release
			})
		}
		return next(ctx, cmd)
	}
}

func (h *pauseHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestCreateAPIKeyWhileTenantIsSuspended runs the admin's SetTenantStatus(suspended) between
// CreateAPIKey's read of the tenant and its write of the key: the new key must still carry
// the suspension, or it would authenticate for a suspended tenant.
func TestCreateAPIKeyWhileTenantIsSuspended(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		hook := &pauseHook{name: "set", part: "}:key", reached: make(chan struct{}), release: make(chan struct{})}
		slow := redis.NewClient(e.rdb.(*redis.Client).Options())
		t.Cleanup(func() { slow.Close() })
		slow.AddHook(hook)
		creator, err := registry.New(registry.Config{Client: slow, Now: e.clock.Now})
		wantNoErr(t, err)
		type created struct {
			plain string
			err   error
		}
		done := make(chan created, 1)
		go func() {
			_, plain, err := creator.CreateAPIKey(t.Context(), registry.NewKeyParams{TenantID: tn.ID,
				Scopes: []string{registry.ScopeWebhooksRead}})
			done <- created{plain, err}
		}()
		select {
		case <-hook.reached:
		case c := <-done:
			t.Fatalf("CreateAPIKey (err %v) never wrote the key with SET: move the test's pause point", c.err)
		}
		_, err = e.store.SetTenantStatus(t.Context(), tn.ID, registry.StatusSuspended)
		close(hook.release)
		wantNoErr(t, err)
		c := <-done
		wantNoErr(t, c.err)
		k, err := lookup(t.Context(), e, c.plain)
		wantNoErr(t, err)
		if k.TenantStatus != registry.StatusSuspended {
			t.Errorf("a key created while its tenant was being suspended carries tenant status %q, want suspended", k.TenantStatus)
		}
	})
}

// TestOverlappingTenantStatusChanges: a suspension that read a key, then stalled while a
// resume went through completely, must not write its older status over the newer one.
func TestOverlappingTenantStatusChanges(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		tn := e.tenant(t, 0)
		_, plain, err := e.store.CreateAPIKey(t.Context(), registry.NewKeyParams{TenantID: tn.ID,
			Scopes: []string{registry.ScopeWebhooksRead}})
		wantNoErr(t, err)
		hook := &pauseHook{name: "get", part: "}:key", reached: make(chan struct{}), release: make(chan struct{})}
		slow := redis.NewClient(e.rdb.(*redis.Client).Options())
		t.Cleanup(func() { slow.Close() })
		slow.AddHook(hook)
		suspender, err := registry.New(registry.Config{Client: slow, Now: e.clock.Now})
		wantNoErr(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := suspender.SetTenantStatus(t.Context(), tn.ID, registry.StatusSuspended)
			done <- err
		}()
		select {
		case <-hook.reached:
		case err := <-done:
			t.Fatalf("SetTenantStatus (err %v) never read the key: move the test's pause point", err)
		}
		_, err = e.store.SetTenantStatus(t.Context(), tn.ID, registry.StatusActive)
		wantNoErr(t, err)
		close(hook.release)
		wantNoErr(t, <-done)

		cur, err := e.store.Tenant(t.Context(), tn.ID)
		wantNoErr(t, err)
		k, err := lookup(t.Context(), e, plain)
		wantNoErr(t, err)
		if cur.Status != registry.StatusActive || k.TenantStatus != cur.Status {
			t.Errorf("tenant is %q and its key says %q after suspend overlapped by resume, want both active",
				cur.Status, k.TenantStatus)
		}
	})
}

// TestAuthenticateGroups: requests that name a key while one of its round trips is under way
// wait and share the next one. Each is answered as alone, in its order: one with another
// secret INVALID_API_KEY and counted against nothing, each of the others counted once (their
// remaining budgets are those of requests one after the other), those over the limit refused.
func TestAuthenticateGroups(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		own, plain := e.apiKey(t, registry.NewKeyParams{TenantID: e.tenant(t, 0).ID, RateLimitPerMinute: 8})
		gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{})}
		s := gatedStore(t, e, gate, plain) // its first request leaves 7
		s.SetGroupWait(time.Minute)

		type answer struct {
			r   registry.RateResult
			err error
		}
		first := make(chan answer, 1)
		go func() {
			_, r, err := s.Authenticate(ctx, plain, 5)
			first <- answer{r, err}
		}()
		<-gate.entered // the first request's round trip is under way, held
		const n = 9    // 8 with the secret (two over what is left), 1 without
		answers := make(chan answer, n)
		for i := range n {
			token := plain
			if i == 4 {
				token = flip(plain, len(plain)-1)
			}
			go func() {
				k, r, err := s.Authenticate(ctx, token, 5)
				if err == nil && k.ID != own.ID {
					err = fmt.Errorf("key %s, want %s", k.ID, own.ID)
				}
				answers <- answer{r, err}
			}()
		}
		waitInLine(t, s, own.ID, n, gate)
		close(gate.release)
		if a := <-first; a.err != nil || !a.r.Allowed || a.r.Remaining != 6 {
			t.Fatalf("first request = %+v, %v; want allowed, 6 remaining", a.r, a.err)
		}
		var remaining []int
		refused, invalid := 0, 0
		for range n {
			a := <-answers
			switch {
			case errors.Is(a.err, registry.E(registry.CodeInvalidAPIKey)):
				invalid++
			case a.err != nil:
				t.Fatalf("request: %v", a.err)
			case a.r.Allowed:
				remaining = append(remaining, a.r.Remaining)
			default:
				refused++
			}
		}
		slices.Sort(remaining)
		if want := []int{0, 1, 2, 3, 4, 5}; !slices.Equal(remaining, want) || refused != 2 || invalid != 1 {
			t.Errorf("the group's answers: remaining %v, %d refused, %d invalid; want %v, 2 refused, 1 invalid",
				remaining, refused, invalid, want)
		}
		if got := gate.scripts.Load(); got != 2 {
			t.Errorf("%d script calls for 10 requests, want 2 (the first, then the group that waited)", got)
		}
	})
}

// TestAuthenticateGroupsOutage: when a group finds Redis out of reach, the requests in line get
// 503 SERVICE_UNAVAILABLE with it, not one failing round trip after another.
func TestAuthenticateGroupsOutage(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		own, plain := e.apiKey(t, registry.NewKeyParams{TenantID: e.tenant(t, 0).ID})
		gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{}),
			fail: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}
		s := gatedStore(t, e, gate, plain)
		s.SetGroupWait(time.Minute)
		const n = 6
		errs := make(chan error, n)
		for range n {
			go func() {
				_, _, err := s.Authenticate(ctx, plain, 5)
				errs <- err
			}()
		}
		<-gate.entered
		waitInLine(t, s, own.ID, n-1, gate)
		close(gate.release)
		for range n {
			wantCode(t, <-errs, registry.CodeServiceUnavailable)
		}
		if got := gate.scripts.Load(); got != 1 {
			t.Errorf("%d script calls, want 1: those in line share the failed one's answer", got)
		}
	})
}

// TestAuthenticateWaitsBounded: a request waits in line for its key's next group at most the
// wait; then it goes alone (a round trip that takes that long finds Redis slow or out of
// reach, where each request on its own gets its answer soonest).
func TestAuthenticateWaitsBounded(t *testing.T) {
	eachBackend(t, registry.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		_, plain := e.apiKey(t, registry.NewKeyParams{TenantID: e.tenant(t, 0).ID})
		gate := &scriptGate{entered: make(chan struct{}), release: make(chan struct{})}
		s := gatedStore(t, e, gate, plain)
		s.SetGroupWait(time.Millisecond)
		first := make(chan error, 1)
		go func() {
			_, _, err := s.Authenticate(ctx, plain, 5)
			first <- err
		}()
		<-gate.entered
		defer close(gate.release)
		alone := make(chan error)
		go func() {
			for range 3 { // each answered while the first request's round trip is held
				_, r, err := s.Authenticate(ctx, plain, 5)
				if err == nil && !r.Allowed {
					err = fmt.Errorf("refused: %+v", r)
				}
				alone <- err
			}
		}()
		for i := range 3 {
			select {
			case err := <-alone:
				wantNoErr(t, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("request %d still waits behind a held round trip after 30 s", i)
			}
		}
		if got := gate.scripts.Load(); got != 4 {
			t.Errorf("%d script calls, want 4 (the held one and three alone)", got)
		}
	})
}

// gatedStore is a store whose client goes through gate, armed once a first Authenticate of
// plain has loaded the script (one script call a round trip from then on).
func gatedStore(t *testing.T, e *env, gate *scriptGate, plain string) *registry.Store {
	t.Helper()
	return gated(t, e, gate, func(s *registry.Store) error {
		_, _, err := s.Authenticate(t.Context(), plain, 5)
		return err
	})
}

// gated is a store whose client goes through gate, armed once warm has loaded the script it
// calls.
func gated(t *testing.T, e *env, gate *scriptGate, warm func(*registry.Store) error) *registry.Store {
	t.Helper()
	c := redis.NewClient(e.rdb.(*redis.Client).Options())
	t.Cleanup(func() { c.Close() })
	c.AddHook(gate)
	s, err := registry.New(registry.Config{Client: c, Now: e.clock.Now})
	wantNoErr(t, err)
	wantNoErr(t, warm(s))
	gate.armed.Store(true)
	return s
}

// waitInLine waits until n requests of key kid are in line for its next group.
func waitInLine(t *testing.T, s *registry.Store, kid string, n int, gate *scriptGate) {
	t.Helper()
	waitFor(t, gate, func() bool { return s.AuthWaiting(kid, 5) >= n })
}

// scriptGate, once armed, holds the first script call until release closes (then fails it with
// fail, when set), and counts script calls.
type scriptGate struct {
	entered, release chan struct{}
	fail             error
	armed            atomic.Bool
	scripts          atomic.Int64
}

func (g *scriptGate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *scriptGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); g.armed.Load() && (name == "evalsha" || name == "eval") && g.scripts.Add(1) == 1 {
			close(g.entered)
			<-g.release
			if g.fail != nil {
				cmd.SetErr(g.fail)
				return g.fail
			}
		}
		return next(ctx, cmd)
	}
}
func (g *scriptGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
