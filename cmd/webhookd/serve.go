package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// serve runs the API and/or the workers until ctx ends. ready, if set, is called with the
// API's address once it listens.
func serve(ctx context.Context, c *Config, stdout, stderr io.Writer, ready func(addr string)) error {
	log := newLogger(stderr, c.LogLevel)
	rc, err := connectRedis(ctx, c, log)
	if err != nil {
		return err
	}
	defer rc.Close()
	store, err := registry.New(registry.Config{Client: rc.client, Retention: c.Retention})
	if err != nil {
		return err
	}
	if rc.embedded != nil {
		if err := printDemo(ctx, store, stdout, rc.embedded.Addr()); err != nil {
			return err
		}
	}
	enq := asynq.NewClientFromRedisClient(rc.client)
	defer enq.Close()
	client, err := httpClient(c)
	if err != nil {
		return err
	}
	m := newMetrics()
	insp := asynq.NewInspectorFromRedisClient(rc.client)
	m.reg.MustRegister(newStateCollector(insp, store, log))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := servePprof(ctx, c.PprofAddr, log); err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	if c.Role == "worker" || c.Role == "all" {
		w, err := delivery.NewWorker(delivery.WorkerConfig{Redis: rc.asynq, RedisClient: rc.client, Store: store,
			Enqueuer: enq, Client: client, Policy: c.Policy, AttemptTimeout: c.AttemptTimeout,
			DisableAfter: c.DisableAfter, DisableMinWindow: minWindow(c.DisableMinWindow), Concurrency: c.Concurrency,
			EndpointConcurrency: c.EndpointConcurrency, Servers: c.WorkerServers, SweepInterval: c.SweepInterval, UserAgent: userAgent(), Logger: log, Observer: m})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); errc <- w.Run(ctx) }()
	}
	if c.Role == "api" || c.Role == "all" {
		srv, err := newAPI(c, store, enq, client, log, func(e *echo.Echo) {
			m.mount(e)
			mountDashboard(e, c.AdminToken, rc.asynq)
		}, m.observeRequest)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		l, err := net.Listen("tcp", c.Addr)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("listen on %s: %w", c.Addr, err)
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

func httpClient(c *Config) (*http.Client, error) {
	allow, _ := parsePrefixes(c.AllowPrivateCIDRs)
	ca, err := readCA(c.ExtraCAFile)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOKD_EXTRA_CA_FILE: %w", err)
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
	svc, err := delivery.NewService(delivery.ServiceConfig{Store: store, Enqueuer: enq, Policy: c.Policy,
		AttemptTimeout: c.AttemptTimeout, Logger: log})
	if err != nil {
		return nil, err
	}
	proxies, _ := parsePrefixes(c.TrustedProxies)
	probe := func(ctx context.Context, url string) error {
		return delivery.Probe(ctx, client, url, userAgent(), c.ProbeTimeout)
	}
	return api.New(api.Config{Registry: store, Deliveries: svc, Probe: probe, Logger: log, TrustedProxies: proxies,
		BodyLimit: c.BodyLimit, DefaultRateLimit: c.RateLimitPerMinute, UnavailableRetryAfter: c.UnavailableRetryAfter,
		Extra: extra, Observe: observe})
}

// printDemo creates a demo tenant and an all-scopes key on the embedded Redis and prints them
// on stdout (not to the log: keys never go to logs).
func printDemo(ctx context.Context, store *registry.Store, stdout io.Writer, addr string) error {
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
	return nil
}
