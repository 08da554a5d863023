package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/delivery"
)

// Config is everything `webhookd serve` reads from flags and WEBHOOKD_* variables.
type Config struct {
	Addr                  string
	Role                  string
	RedisURL              string
	RedisClusterAddrs     string
	AllowPrivateCIDRs     string
	ExtraCAFile           string
	DNSServer             string
	TrustedProxies        string
	Policy                delivery.RetryPolicy
	AttemptTimeout        time.Duration
	DisableAfter          int
	DisableMinWindow      time.Duration
	RateLimitPerMinute    int
	BodyLimit             int64
	Concurrency           int
	EndpointConcurrency   int
	WorkerServers         int
	Retention             time.Duration
	ShutdownTimeout       time.Duration
	LogLevel              string
	AdminToken            string
	ProbeTimeout          time.Duration
	SweepInterval         time.Duration
	UnavailableRetryAfter int
	PprofAddr             string
}

// envFlag registers a flag whose default comes from an environment variable.
type envFlag struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func (e *envFlag) def(env, fallback string) string {
	if v := e.getenv(env); v != "" {
		return v
	}
	return fallback
}

func (e *envFlag) str(p *string, name, env, fallback, usage string) {
	e.fs.StringVar(p, name, e.def(env, fallback), usage+" ($"+env+")")
}

func (e *envFlag) dur(p *time.Duration, name, env string, fallback time.Duration, usage string) {
	v, err := time.ParseDuration(e.def(env, fallback.String()))
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", env, err))
	}
	e.fs.DurationVar(p, name, v, usage+" ($"+env+")")
}

func (e *envFlag) num(p *int, name, env string, fallback int, usage string) {
	v, err := strconv.Atoi(e.def(env, strconv.Itoa(fallback)))
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", env, err))
	}
	e.fs.IntVar(p, name, v, usage+" ($"+env+")")
}

func (e *envFlag) float(p *float64, name, env string, fallback float64, usage string) {
	v, err := strconv.ParseFloat(e.def(env, strconv.FormatFloat(fallback, 'g', -1, 64)), 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", env, err))
	}
	e.fs.Float64Var(p, name, v, usage+" ($"+env+")")
}

// parseServe reads serve's flags over the environment.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("webhookd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &envFlag{fs: fs, getenv: getenv}
	e.str(&c.Addr, "addr", "WEBHOOKD_ADDR", ":8080", "listen address of the API")
	e.str(&c.Role, "role", "WEBHOOKD_ROLE", "all", "what this process runs: api, worker or all")
	e.str(&c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL, e.g. redis://127.0.0.1:6379/0; unset (and no cluster): embedded in-memory Redis")
	e.str(&c.RedisClusterAddrs, "redis-cluster-addrs", "REDIS_CLUSTER_ADDRS", "", "comma-separated Redis Cluster node addresses")
	e.str(&c.AllowPrivateCIDRs, "allow-private-cidrs", "WEBHOOKD_ALLOW_PRIVATE_CIDRS", "", "comma-separated otherwise-blocked ranges endpoints may resolve to (local testing)")
	e.str(&c.ExtraCAFile, "extra-ca-file", "WEBHOOKD_EXTRA_CA_FILE", "", "PEM file of root CAs trusted for endpoint TLS in addition to the system roots")
	e.str(&c.DNSServer, "dns-server", "WEBHOOKD_DNS_SERVER", "", "ip:port of the DNS server that resolves webhook hosts; empty: the system resolver")
	e.str(&c.TrustedProxies, "trusted-proxies", "WEBHOOKD_TRUSTED_PROXIES", "", "comma-separated CIDRs whose X-Forwarded-For is believed")
	e.dur(&c.Policy.InitialInterval, "retry-initial-interval", "WEBHOOKD_RETRY_INITIAL_INTERVAL", 5*time.Second, "first retry delay")
	e.float(&c.Policy.Multiplier, "retry-multiplier", "WEBHOOKD_RETRY_MULTIPLIER", 3, "growth factor of retry delays")
	e.dur(&c.Policy.MaxInterval, "retry-max-interval", "WEBHOOKD_RETRY_MAX_INTERVAL", 8*time.Hour, "longest retry delay")
	e.num(&c.Policy.MaxAttempts, "max-attempts", "WEBHOOKD_MAX_ATTEMPTS", 10, "attempts per delivery, the first included")
	e.dur(&c.AttemptTimeout, "attempt-timeout", "WEBHOOKD_ATTEMPT_TIMEOUT", 15*time.Second, "time limit of one delivery attempt")
	e.num(&c.DisableAfter, "disable-after-failures", "WEBHOOKD_DISABLE_AFTER_FAILURES", 15, "consecutive failed attempts that disable an endpoint")
	e.dur(&c.DisableMinWindow, "disable-min-window", "WEBHOOKD_DISABLE_MIN_WINDOW", time.Hour, "minimum age of a failure streak before it disables (0 allowed)")
	e.num(&c.RateLimitPerMinute, "rate-limit-per-minute", "WEBHOOKD_RATE_LIMIT_PER_MINUTE", 600, "default requests per minute per API key")
	var body int
	e.num(&body, "body-limit", "WEBHOOKD_BODY_LIMIT", 256<<10, "largest request body in bytes")
	e.num(&c.Concurrency, "concurrency", "WEBHOOKD_CONCURRENCY", 64, "delivery attempts in flight per worker process")
	e.num(&c.WorkerServers, "worker-servers", "WEBHOOKD_WORKER_SERVERS", 4, "asynq servers sharing --concurrency in one worker process")
	e.num(&c.EndpointConcurrency, "endpoint-concurrency", "WEBHOOKD_ENDPOINT_CONCURRENCY", 0, "attempts one endpoint may have in flight per worker process (0: half of --concurrency)")
	e.dur(&c.Retention, "retention", "WEBHOOKD_RETENTION", 30*24*time.Hour, "how long events, deliveries and attempts are kept")
	e.dur(&c.ShutdownTimeout, "shutdown-timeout", "WEBHOOKD_SHUTDOWN_TIMEOUT", 20*time.Second, "how long SIGTERM waits for requests in flight")
	e.str(&c.LogLevel, "log-level", "WEBHOOKD_LOG_LEVEL", "info", "debug, info, warn or error")
	e.str(&c.AdminToken, "admin-token", "WEBHOOKD_ADMIN_TOKEN", "", "enables the queue dashboard at /admin/queues, protected by this token")
	e.dur(&c.ProbeTimeout, "probe-timeout", "WEBHOOKD_PROBE_TIMEOUT", 5*time.Second, "time limit of the reachability check on create and URL change")
	e.dur(&c.SweepInterval, "sweep-interval", "WEBHOOKD_SWEEP_INTERVAL", 30*time.Second, "how often workers sweep the outbox and orphaned tasks (tasks of dead workers: every 5s, or this if shorter)")
	e.num(&c.UnavailableRetryAfter, "unavailable-retry-after", "WEBHOOKD_UNAVAILABLE_RETRY_AFTER", 5, "Retry-After seconds sent with 503")
	e.str(&c.PprofAddr, "pprof-addr", "WEBHOOKD_PPROF_ADDR", "", "serve Go's pprof profiles on this separate address (e.g. 127.0.0.1:6060); off when empty")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if len(e.errs) > 0 {
		return nil, errors.Join(e.errs...)
	}
	c.BodyLimit = int64(body)
	return c, c.validate()
}

func (c *Config) validate() error {
	switch c.Role {
	case "api", "worker", "all":
	default:
		return fmt.Errorf("--role must be api, worker or all, not %q", c.Role)
	}
	if _, err := parsePrefixes(c.AllowPrivateCIDRs); err != nil {
		return fmt.Errorf("WEBHOOKD_ALLOW_PRIVATE_CIDRS: %w", err)
	}
	if c.DNSServer != "" {
		if _, err := netip.ParseAddrPort(c.DNSServer); err != nil {
			return fmt.Errorf("WEBHOOKD_DNS_SERVER: %q is not an ip:port", c.DNSServer)
		}
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("WEBHOOKD_TRUSTED_PROXIES: %w", err)
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	if c.AttemptTimeout <= 0 || c.DisableAfter < 1 || c.DisableMinWindow < 0 || c.RateLimitPerMinute < 1 ||
		c.BodyLimit < 1024 || c.Concurrency < 1 || c.EndpointConcurrency < 0 || c.WorkerServers < 1 || c.Retention < time.Hour || c.ProbeTimeout <= 0 {
		return errors.New("attempt timeout, disable-after-failures, rate limit, body limit (>= 1024), concurrency, retention (>= 1h) and probe timeout must be positive; disable-min-window must not be negative")
	}
	return nil
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR or IP address", part)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func readCA(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}
