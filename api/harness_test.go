package api_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/registry/registrytest"
	"github.com/cert-ix/webhookd/signing"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { registrytest.Main(m) }

// env is one API server in-process on a fresh Redis database, with a trusted HTTPS receiver
// that registrations can point at.
type env struct {
	store  *registry.Store
	rdb    redis.UniversalClient
	base   string // the API's base URL
	recv   *httptest.Server
	hits   atomic.Int64 // requests the receiver handled
	probes atomic.Int64 // reachability probes the API made
	logs   *syncBuffer
	http   *http.Client
	srv    *api.Server
}

// setup is what options may change before the server is built.
type setup struct {
	cfg          api.Config
	client       redis.UniversalClient
	wrapRegistry func(*registry.Store) api.Registry
	wrapEnqueuer func(delivery.Enqueuer) delivery.Enqueuer
	wrapProbe    func(api.Prober) api.Prober
	allow        []netip.Prefix
}

type option func(*setup)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// withTrustedProxies makes the API believe X-Forwarded-For from these CIDRs.
func withTrustedProxies(cidrs ...string) option {
	return func(s *setup) {
		for _, c := range cidrs {
			s.cfg.TrustedProxies = append(s.cfg.TrustedProxies, netip.MustParsePrefix(c))
		}
	}
}

// withConfig lets a test change the api.Config (Extra, BodyLimit, ...).
func withConfig(f func(*api.Config)) option { return func(s *setup) { f(&s.cfg) } }

// withRedis builds the store on c instead of a fresh test database.
func withRedis(c redis.UniversalClient) option { return func(s *setup) { s.client = c } }

// withRegistry puts a fault-injecting wrapper between the API and the real store.
func withRegistry(wrap func(*registry.Store) api.Registry) option {
	return func(s *setup) { s.wrapRegistry = wrap }
}

// withEnqueuer puts a fault-injecting wrapper around the real asynq client.
func withEnqueuer(wrap func(delivery.Enqueuer) delivery.Enqueuer) option {
	return func(s *setup) { s.wrapEnqueuer = wrap }
}

// withProbe puts a wrapper around the real reachability probe (fuzzing answers for hosts it
// must not resolve).
func withProbe(wrap func(api.Prober) api.Prober) option { return func(s *setup) { s.wrapProbe = wrap } }

// withoutPrivateAllowance makes the probe client refuse loopback like production does.
func withoutPrivateAllowance() option { return func(s *setup) { s.allow = nil } }

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	s := &setup{allow: loopback}
	for _, o := range opts {
		o(s)
	}
	if s.client == nil {
		s.client = registrytest.Client(t)
	}
	e := &env{rdb: s.client, logs: &syncBuffer{}, store: registrytest.Store(t, s.client),
		http: &http.Client{Timeout: 30 * time.Second}}
	e.recv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(e.recv.Close)

	enq := delivery.NewEnqueuer(s.client)
	if s.wrapEnqueuer != nil {
		enq = s.wrapEnqueuer(enq)
	}
	svc, err := delivery.NewService(delivery.ServiceConfig{Store: e.store, Enqueuer: enq})
	if err != nil {
		t.Fatalf("delivery.NewService: %v", err)
	}
	client, err := delivery.NewHTTPClient(delivery.ClientConfig{AllowPrivate: s.allow,
		ExtraRootCAs: certPEM(e.recv.Certificate())})
	if err != nil {
		t.Fatalf("delivery.NewHTTPClient: %v", err)
	}
	t.Cleanup(client.CloseIdleConnections)

	cfg := s.cfg
	cfg.Registry = e.store
	if s.wrapRegistry != nil {
		cfg.Registry = s.wrapRegistry(e.store)
	}
	cfg.Deliveries = svc
	cfg.NewSecret = signing.NewSecret
	cfg.Probe = func(ctx context.Context, url string) error {
		e.probes.Add(1)
		return delivery.Probe(ctx, client, url, "webhookd-test", 2*time.Second)
	}
	if s.wrapProbe != nil {
		cfg.Probe = s.wrapProbe(cfg.Probe)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	e.srv = srv
	e.base = "http://" + serveAPI(t, srv)
	return e
}

// serveAPI runs srv.Serve, the server the binary runs, on a loopback port until the test ends
// and returns its address.
func serveAPI(t testing.TB, srv *api.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("api.Server.Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// syncBuffer is a bytes.Buffer the server's goroutines and the test may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tenant creates an active tenant with a monthly event quota (0: unlimited).
func (e *env) tenant(t testing.TB, quota int64) string {
	t.Helper()
	tn, err := e.store.CreateTenant(t.Context(), "tenant", quota)
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return tn.ID
}

// key creates an API key and returns the plain key and its id.
func (e *env) key(t testing.TB, p registry.NewKeyParams) (plain, id string) {
	t.Helper()
	if p.Scopes == nil {
		p.Scopes = registry.Scopes
	}
	k, plain, err := e.store.CreateAPIKey(t.Context(), p)
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return plain, k.ID
}

// newKey creates a tenant and a key with every scope; it returns the key and the tenant id.
func (e *env) newKey(t testing.TB) (key, tid string) {
	t.Helper()
	tid = e.tenant(t, 0)
	key, _ = e.key(t, registry.NewKeyParams{TenantID: tid})
	return key, tid
}

// response is what the API answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request. body may be nil (none), a string or []byte (sent as is), an io.Reader
// (sent chunked, without Content-Length) or anything else (sent as JSON). hdr are name, value pairs.
func (e *env) do(t *testing.T, method, path, key string, body any, hdr ...string) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = struct{ io.Reader }{b} // hide the length: chunked
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal body: %v", err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.base+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	checkOpenAPI(t, req, res.StatusCode, res.Header, b)
	return &response{status: res.StatusCode, header: res.Header, body: b}
}

// object decodes the body as one JSON object.
func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// assertError checks the error envelope: status, code, the exact message, success:false and a
// requestId equal to the X-Request-ID header, and no other field.
func assertError(t *testing.T, r *response, status int, code, msg string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	m := r.object(t)
	rid := r.header.Get("X-Request-ID")
	want := map[string]any{"success": false, "error": msg, "code": code, "requestId": rid}
	if rid == "" {
		t.Errorf("X-Request-ID header is missing")
	}
	if len(m) != len(want) {
		t.Errorf("envelope = %s, want exactly the fields success, error, code, requestId", r.body)
	}
	for k, w := range want {
		if m[k] != w {
			t.Errorf("envelope %s = %#v, want %#v", k, m[k], w)
		}
	}
}

// data asserts a success envelope with the status and returns its data object.
func data(t *testing.T, r *response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	m := r.object(t)
	if m["success"] != true {
		t.Fatalf("success = %v, want true; body %s", m["success"], r.body)
	}
	d, ok := m["data"].(map[string]any)
	if !ok {
		t.Fatalf("data is %T, want an object; body %s", m["data"], r.body)
	}
	return d
}

// listData asserts a list envelope and returns its items and pagination.
func listData(t *testing.T, r *response) ([]any, map[string]any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
	m := r.object(t)
	items, ok := m["data"].([]any)
	if !ok || m["success"] != true {
		t.Fatalf("list envelope = %s, want success:true and a data array", r.body)
	}
	pg, ok := m["pagination"].(map[string]any)
	if !ok {
		t.Fatalf("list envelope has no pagination object: %s", r.body)
	}
	return items, pg
}

// hookURL is an address on the trusted receiver.
func (e *env) hookURL(path string) string { return e.recv.URL + path }

// createWebhook registers an endpoint on the receiver for events and returns its data.
func (e *env) createWebhook(t *testing.T, key string, events ...string) map[string]any {
	t.Helper()
	if len(events) == 0 {
		events = []string{registry.EventScanCompleted}
	}
	r := e.do(t, http.MethodPost, "/api/v1/webhooks", key, map[string]any{"url": e.hookURL("/hook"), "events": events})
	return data(t, r, http.StatusCreated)
}

// sendTest queues a test ping to the endpoint and returns the delivery's data.
func (e *env) sendTest(t *testing.T, key, id string) map[string]any {
	t.Helper()
	return data(t, e.do(t, http.MethodPost, "/api/v1/webhooks/"+id+"/test", key, nil), http.StatusAccepted)
}

// publish publishes a scan event of typ and returns the response.
func (e *env) publish(t *testing.T, key, typ string, hdr ...string) *response {
	t.Helper()
	body := map[string]any{"type": typ, "data": map[string]any{"scanId": "7d8f0e7c-2f7a-4a0e-9d55-1c1b0b9b2c11", "scanType": "zap"}}
	return e.do(t, http.MethodPost, "/api/v1/events", key, body, hdr...)
}

// unknownID is a well-formed id no endpoint or delivery has.
const unknownID = "3f1e9a52-8c1b-4b6e-9a57-2d5d3c1f7a10"
