package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/cert-ix/webhookd/signing"
	"github.com/labstack/echo/v4"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by Config.validate
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// parts are what the API and the workers share in one process.
type parts struct {
	c       *Config
	log     *slog.Logger
	rc      *redisConn
	store   *registry.Store
	enq     delivery.Enqueuer
	client  *http.Client
	metrics *metrics
}

// serve runs the API and/or the workers until ctx ends. ready, if set, is called with the
// API's address once it listens. The API's port is taken first, so that a busy port stops
// serve before anything is printed.
func serve(ctx context.Context, c *Config, stdout, stderr io.Writer, ready func(addr string)) error {
	log := newLogger(stderr, c.LogLevel)
	var l net.Listener
	if c.Role != "worker" {
		var err error
		if l, err = net.Listen("tcp", c.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w", c.Addr, err)
		}
		defer l.Close()
	}
	p, err := prepare(ctx, c, log, stdout, l)
	if err != nil {
		return err
	}
	defer p.rc.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := servePprof(ctx, c.PprofAddr, log); err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	if err := serveMetrics(ctx, c.MetricsAddr, p.metrics, log); err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return p.run(ctx, cancel, l, ready)
}

// prepare connects to Redis and builds what both roles use; on the embedded default it also
// sets up local development and prints the demo key.
func prepare(ctx context.Context, c *Config, log *slog.Logger, stdout io.Writer, l net.Listener) (*parts, error) {
	rc, err := connectRedis(ctx, c, log)
	if err != nil {
		return nil, err
	}
	p := &parts{c: c, log: log, rc: rc, metrics: newMetrics()}
	var localCA []byte
	if p.store, err = registry.New(registry.Config{Client: rc.client, Retention: c.Retention}); err == nil && rc.embedded != nil {
		if localCA, err = localDevelopment(c, log); err == nil {
			err = printDemo(ctx, p.store, stdout, rc.embedded.Addr(), c.Home, l)
		}
	}
	if err == nil {
		p.client, err = httpClient(c, localCA)
	}
	if err != nil {
		rc.Close()
		return nil, err
	}
	p.enq = delivery.NewEnqueuer(rc.client)
	p.metrics.reg.MustRegister(newStateCollector(rc.client, c.queueShards(), p.store, log))
	return p, nil
}

// run starts the roles c asks for and waits until ctx ends or one of them fails.
func (p *parts) run(ctx context.Context, cancel context.CancelFunc, l net.Listener, ready func(string)) error {
	c, log := p.c, p.log
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if c.Role == "worker" || c.Role == "all" {
		w, err := delivery.NewWorker(delivery.WorkerConfig{Redis: p.rc.asynq, RedisClient: p.rc.client, Store: p.store,
			Enqueuer: p.enq, Client: p.client, Policy: c.Policy, AttemptTimeout: c.AttemptTimeout,
			DisableAfter: c.DisableAfter, DisableMinWindow: minWindow(c.DisableMinWindow), Concurrency: c.Concurrency,
			EndpointConcurrency: c.endpointConcurrency(), Servers: c.WorkerServers, QueueShards: c.queueShards(),
			SweepInterval: c.SweepInterval, UserAgent: userAgent(), Logger: log, Observer: p.metrics})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); errc <- w.Run(ctx) }()
	}
	if l != nil {
		srv, err := newAPI(c, p.store, p.enq, p.client, log, func(e *echo.Echo) {
			p.metrics.mount(e)
			mountDashboard(e, c.AdminToken, p.rc.asynq)
		}, p.metrics.observeRequest)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		log.Info("webhookd API listening", "addr", l.Addr().String(), "role", c.Role, "version", version)
		if ready != nil {
			ready(l.Addr().String())
		}
		wg.Add(1)
		go func() { defer wg.Done(); errc <- srv.Serve(ctx, l, c.ShutdownTimeout) }()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
	}
	cancel()
	wg.Wait()
	log.Info("webhookd stopped")
	return first
}

// minWindow maps the documented "0 allowed" to the worker's "negative means zero".
func minWindow(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func userAgent() string { return "webhookd/" + version }

// httpClient is the one webhook client; extraCA (PEM) is trusted besides WEBHOOKD_EXTRA_CA_FILE.
func httpClient(c *Config, extraCA []byte) (*http.Client, error) {
	allow, _ := parsePrefixes(c.AllowPrivateCIDRs)
	ca, err := readCA(c.ExtraCAFile)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_EXTRA_CA_FILE: %w", err)
	}
	if len(extraCA) > 0 {
		ca = append(append(ca, '\n'), extraCA...)
	}
	return delivery.NewHTTPClient(delivery.ClientConfig{AllowPrivate: allow, ExtraRootCAs: ca, DNSServer: c.DNSServer,
		Control: dialCheck})
}

// dialCheck, if set, runs after the address guard right before every connect(2) of the
// webhook client. It is nil in production; the tests install a spy that refuses anything
// off loopback.
var dialCheck func(network, address string, c syscall.RawConn) error

func newAPI(c *Config, store *registry.Store, enq delivery.Enqueuer, client *http.Client, log *slog.Logger,
	extra func(*echo.Echo), observe func(string, string, int, time.Duration)) (*api.Server, error) {
	svc, err := delivery.NewService(delivery.ServiceConfig{Store: store, Enqueuer: enq,
		AttemptTimeout: c.AttemptTimeout, QueueShards: c.queueShards(), Logger: log})
	if err != nil {
		return nil, err
	}
	proxies, _ := parsePrefixes(c.TrustedProxies)
	probe := func(ctx context.Context, url string) error {
		return delivery.Probe(ctx, client, url, userAgent(), c.ProbeTimeout)
	}
	return api.New(api.Config{EndpointConcurrency: c.endpointConcurrency(), Registry: store, Deliveries: svc, Probe: probe, NewSecret: signing.NewSecret, Logger: log, TrustedProxies: proxies,
		BodyLimit: c.BodyLimit, DefaultRateLimit: c.RateLimitPerMinute, UnavailableRetryAfter: c.UnavailableRetryAfter,
		PublicURL: strings.TrimSuffix(c.PublicURL, "/"), Extra: extra, Observe: observe})
}

// localDevelopment makes the embedded default deliver to `webhookd listen` with nothing set
// up: unless set otherwise, endpoints may resolve to loopback, and the local CA (made now if
// listen has not made it yet) is trusted for endpoint TLS. Both are logged as warnings. It
// returns the CA's PEM.
func localDevelopment(c *Config, log *slog.Logger) ([]byte, error) {
	if c.AllowPrivateCIDRs == "" {
		c.AllowPrivateCIDRs = "127.0.0.0/8,::1/128"
		log.Warn("embedded default: webhook URLs may resolve to loopback (127.0.0.0/8, ::1) for local development; set REDIS_URL for anything but a trial",
			"allowPrivateCidrs", c.AllowPrivateCIDRs)
	}
	if c.Home == "" {
		log.Warn("embedded default: no per-user directory (set WEBHOOKD_HOME): the local CA of webhookd listen is not trusted and demo.env is not written")
		return nil, nil
	}
	ca, err := loadOrMakeCA(c.Home)
	if err != nil {
		return nil, err
	}
	log.Warn("embedded default: trusting the local development CA of webhookd listen for endpoint TLS", "caFile", ca.path)
	return ca.certPEM, nil
}

// demoEnvFile holds API and KEY of the embedded default for shell lines (the README's quickstart).
const demoEnvFile = "demo.env"

// printDemo creates a demo tenant and an all-scopes key on the embedded Redis, prints them on
// stdout (not to the log: keys never go to logs) and, when the API listens on l, writes API
// and KEY to demo.env in home (mode 0600) so that shell lines can use them.
func printDemo(ctx context.Context, store *registry.Store, stdout io.Writer, addr, home string, l net.Listener) error {
	t, err := store.CreateTenant(ctx, "demo", 0)
	if err != nil {
		return err
	}
	_, plain, err := store.CreateAPIKey(ctx, registry.NewKeyParams{TenantID: t.ID, Name: "demo", Scopes: registry.Scopes})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "webhookd: embedded Redis on %s; data is in memory only.\n", addr)
	fmt.Fprintf(stdout, "webhookd: demo tenant %s, API key with all scopes:\n%s\n", t.ID, plain)
	if l == nil || home == "" {
		return nil
	}
	path := filepath.Join(home, demoEnvFile)
	env := fmt.Sprintf("API=http://%s/api/v1\nKEY=%s\n", loopbackAddr(l.Addr()), plain)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(env), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "webhookd: API and KEY for shell lines are in %s\n", path)
	return nil
}
