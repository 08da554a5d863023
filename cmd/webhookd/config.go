package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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
	QueueShards           int
	Retention             time.Duration
	ShutdownTimeout       time.Duration
	LogLevel              string
	AdminToken            string
	ProbeTimeout          time.Duration
	SweepInterval         time.Duration
	UnavailableRetryAfter int
	PprofAddr             string
	MetricsAddr           string
	PublicURL             string
	// Home holds the local development CA, listen's certificate and the demo key file.
	Home string
	// embedded is true when neither REDIS_URL nor REDIS_CLUSTER_ADDRS is set.
	embedded bool
}

// envFlag registers a flag whose default comes from an environment variable. A variable whose
// value does not parse is noted in errs and its flag keeps the fallback.
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
	raw := e.def(env, fallback.String())
	v, err := time.ParseDuration(raw)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a duration such as 5s, 2m or 1h", env, raw))
		v = fallback
	}
	e.fs.DurationVar(p, name, v, usage+" ($"+env+")")
}

func (e *envFlag) num(p *int, name, env string, fallback int, usage string) {
	raw := e.def(env, strconv.Itoa(fallback))
	v, err := strconv.Atoi(raw)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not an integer", env, raw))
		v = fallback
	}
	e.fs.IntVar(p, name, v, usage+" ($"+env+")")
}

func (e *envFlag) float(p *float64, name, env string, fallback float64, usage string) {
	raw := e.def(env, strconv.FormatFloat(fallback, 'g', -1, 64))
	v, err := strconv.ParseFloat(raw, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %q is not a number", env, raw))
		v = fallback
	}
	e.fs.Float64Var(p, name, v, usage+" ($"+env+")")
}

// helpRequested carries the help text of --help, which is not an error: run prints it on
// stdout and exits 0.
type helpRequested struct{ text string }

func (h helpRequested) Error() string { return h.text }

// defaultDemoAddr is where the API listens on the embedded default: its demo key has every
// scope, so only this machine may reach it unless WEBHOOKD_ADDR says otherwise.
const defaultDemoAddr = "127.0.0.1:8080"

// parseServe reads serve's flags over the environment.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("webhookd serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	e := &envFlag{fs: fs, getenv: getenv}
	var body int
	defineServeFlags(e, c, &body)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, helpRequested{serveHelp(fs)}
		}
		return nil, fmt.Errorf("%w (webhookd serve --help lists every setting)", err)
	}
	c.BodyLimit = int64(body)
	if len(e.errs) > 0 { // a value that did not parse holds its default: validate names the others
		return nil, errors.Join(append(e.errs, c.validate())...)
	}
	c.embedded = c.RedisURL == "" && c.RedisClusterAddrs == ""
	if c.embedded && getenv("WEBHOOKD_ADDR") == "" && !flagSet(fs, "addr") {
		c.Addr = defaultDemoAddr
	}
	if c.embedded { // the local development files are only used on the embedded default
		// Without a per-user directory serve still runs; it only skips those files (and says so).
		c.Home, _ = webhookdHome(c.Home, getenv)
	}
	return c, c.validate()
}

func defineServeFlags(e *envFlag, c *Config, body *int) {
	e.str(&c.Addr, "addr", "WEBHOOKD_ADDR", ":8080", "listen address of the API (embedded default: "+defaultDemoAddr+")")
	e.str(&c.Role, "role", "WEBHOOKD_ROLE", "all", "what this process runs: api, worker or all")
	e.str(&c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL, e.g. redis://127.0.0.1:6379/0; unset (and no cluster): embedded in-memory Redis")
	e.str(&c.RedisClusterAddrs, "redis-cluster-addrs", "REDIS_CLUSTER_ADDRS", "", "comma-separated Redis Cluster node addresses")
	e.str(&c.AllowPrivateCIDRs, "allow-private-cidrs", "WEBHOOKD_ALLOW_PRIVATE_CIDRS", "", "comma-separated otherwise-blocked ranges endpoints may resolve to (local testing; embedded default: loopback)")
	e.str(&c.ExtraCAFile, "extra-ca-file", "WEBHOOKD_EXTRA_CA_FILE", "", "PEM file of root CAs trusted for endpoint TLS in addition to the system roots (embedded default: also the local CA of webhookd listen)")
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
	e.num(body, "body-limit", "WEBHOOKD_BODY_LIMIT", 256<<10, "largest request body in bytes (at least 1024)")
	e.num(&c.Concurrency, "concurrency", "WEBHOOKD_CONCURRENCY", 64, "delivery attempts in flight per worker process")
	e.num(&c.WorkerServers, "worker-servers", "WEBHOOKD_WORKER_SERVERS", 4, "asynq servers sharing --concurrency in one worker process")
	e.num(&c.QueueShards, "queue-shards", "WEBHOOKD_QUEUE_SHARDS", 0, "task queues, each its own hash slot (0: 1 on one Redis, 16 on a cluster); the same in every process")
	e.num(&c.EndpointConcurrency, "endpoint-concurrency", "WEBHOOKD_ENDPOINT_CONCURRENCY", 0, "attempts one endpoint may have in flight (0: half of --concurrency)")
	e.dur(&c.Retention, "retention", "WEBHOOKD_RETENTION", 30*24*time.Hour, "how long events, deliveries and attempts are kept (at least 1h)")
	e.dur(&c.ShutdownTimeout, "shutdown-timeout", "WEBHOOKD_SHUTDOWN_TIMEOUT", 20*time.Second, "how long SIGTERM waits for requests in flight")
	e.str(&c.LogLevel, "log-level", "WEBHOOKD_LOG_LEVEL", "info", "debug, info, warn or error")
	e.str(&c.AdminToken, "admin-token", "WEBHOOKD_ADMIN_TOKEN", "", "enables the queue dashboard at /admin/queues, protected by this token")
	e.dur(&c.ProbeTimeout, "probe-timeout", "WEBHOOKD_PROBE_TIMEOUT", 5*time.Second, "time limit of the reachability check on create and URL change")
	e.dur(&c.SweepInterval, "sweep-interval", "WEBHOOKD_SWEEP_INTERVAL", 30*time.Second, "how often workers sweep the outbox and orphaned tasks (tasks of dead workers: every 5s, or this if shorter)")
	e.num(&c.UnavailableRetryAfter, "unavailable-retry-after", "WEBHOOKD_UNAVAILABLE_RETRY_AFTER", 5, "Retry-After seconds sent with 503")
	e.str(&c.PublicURL, "public-url", "WEBHOOKD_PUBLIC_URL", "", "origin (scheme://host[:port]) that portal links point at; empty: the origin of the request that makes the link")
	e.str(&c.MetricsAddr, "metrics-addr", "WEBHOOKD_METRICS_ADDR", "", "also serve /metrics and /healthz on this address (how a --role worker process is scraped); off when empty")
	e.str(&c.PprofAddr, "pprof-addr", "WEBHOOKD_PPROF_ADDR", "", "serve Go's pprof profiles on this separate address (e.g. 127.0.0.1:6060); off when empty")
	e.str(&c.Home, "home", "WEBHOOKD_HOME", "", "directory of the local development CA and the demo key file (default $XDG_CONFIG_HOME/webhookd or ~/.config/webhookd)")
}

func serveHelp(fs *flag.FlagSet) string {
	var b strings.Builder
	b.WriteString("usage: webhookd serve [flags]\n\nRuns the API and the delivery workers. Every flag can also be set by the\n" +
		"environment variable named after it; a flag wins over its variable.\n\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// webhookdHome is the per-user directory of the local development files: WEBHOOKD_HOME, else
// $XDG_CONFIG_HOME/webhookd, else ~/.config/webhookd on every system (so the README's shell
// lines find it without asking the OS).
func webhookdHome(set string, getenv func(string) string) (string, error) {
	switch {
	case set != "":
		return filepath.Abs(set)
	case getenv("XDG_CONFIG_HOME") != "":
		return filepath.Join(getenv("XDG_CONFIG_HOME"), "webhookd"), nil
	case getenv("HOME") != "":
		return filepath.Join(getenv("HOME"), ".config", "webhookd"), nil
	}
	return "", errors.New("WEBHOOKD_HOME: neither it, XDG_CONFIG_HOME nor HOME is set")
}

// validate checks each setting once, at start, naming the variable of each one that is wrong.
func (c *Config) validate() error {
	var errs []error
	bad := func(cond bool, format string, args ...any) {
		if cond {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	bad(c.Role != "api" && c.Role != "worker" && c.Role != "all", "WEBHOOKD_ROLE (--role) must be api, worker or all, not %q", c.Role)
	var lvl slog.Level
	bad(!slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.LogLevel)) || lvl.UnmarshalText([]byte(c.LogLevel)) != nil,
		"WEBHOOKD_LOG_LEVEL (--log-level) must be debug, info, warn or error, not %q", c.LogLevel)
	if _, err := parsePrefixes(c.AllowPrivateCIDRs); err != nil {
		errs = append(errs, fmt.Errorf("WEBHOOKD_ALLOW_PRIVATE_CIDRS: %w", err))
	}
	if _, err := netip.ParseAddrPort(c.DNSServer); c.DNSServer != "" && err != nil {
		errs = append(errs, fmt.Errorf("WEBHOOKD_DNS_SERVER: %q is not an ip:port", c.DNSServer))
	}
	if err := checkOrigin(c.PublicURL); err != nil {
		errs = append(errs, fmt.Errorf("WEBHOOKD_PUBLIC_URL: %w", err))
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("WEBHOOKD_TRUSTED_PROXIES: %w", err))
	}
	p := c.Policy
	bad(p.InitialInterval <= 0, "WEBHOOKD_RETRY_INITIAL_INTERVAL must be positive, not %s", p.InitialInterval)
	bad(p.MaxInterval <= 0, "WEBHOOKD_RETRY_MAX_INTERVAL must be positive, not %s", p.MaxInterval)
	bad(p.InitialInterval > p.MaxInterval, "WEBHOOKD_RETRY_INITIAL_INTERVAL (%s) must not exceed WEBHOOKD_RETRY_MAX_INTERVAL (%s)", p.InitialInterval, p.MaxInterval)
	bad(!(p.Multiplier >= 1) || math.IsInf(p.Multiplier, 1), "WEBHOOKD_RETRY_MULTIPLIER must be a number of at least 1, not %g", p.Multiplier)
	bad(p.MaxAttempts < 1, "WEBHOOKD_MAX_ATTEMPTS must be at least 1, not %d", p.MaxAttempts)
	c.validateLimits(bad)
	c.validateAddrs(bad)
	return errors.Join(errs...)
}

// validateAddrs checks the listen addresses, the cluster's node addresses and the extra CA
// file, so that a typo in one stops serve with the variable's name instead of failing later
// with a listener's or a dialer's error.
func (c *Config) validateAddrs(bad func(bool, string, ...any)) {
	for _, a := range []struct{ name, v string }{{"WEBHOOKD_ADDR (--addr)", c.Addr},
		{"WEBHOOKD_METRICS_ADDR (--metrics-addr)", c.MetricsAddr}, {"WEBHOOKD_PPROF_ADDR (--pprof-addr)", c.PprofAddr}} {
		_, ok := hostPort(a.v)
		bad(a.v != "" && !ok, "%s: %q is not an address such as 127.0.0.1:8080 or :8080", a.name, a.v)
	}
	for _, n := range splitList(c.RedisClusterAddrs) {
		host, ok := hostPort(n)
		bad(!ok || host == "", "REDIS_CLUSTER_ADDRS: %q is not a host:port such as 10.0.0.1:7000", n)
	}
	if c.ExtraCAFile != "" {
		pem, err := os.ReadFile(c.ExtraCAFile)
		bad(err != nil, "WEBHOOKD_EXTRA_CA_FILE: %v", err)
		bad(err == nil && !x509.NewCertPool().AppendCertsFromPEM(pem), "WEBHOOKD_EXTRA_CA_FILE: %s holds no PEM certificate",
			c.ExtraCAFile)
	}
}

// hostPort splits "host:port" with a port from 0 to 65535 (the host may be empty).
func hostPort(s string) (host string, ok bool) {
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	return host, err == nil && perr == nil && n >= 0 && n <= 65535
}

func (c *Config) validateLimits(bad func(bool, string, ...any)) {
	bad(c.AttemptTimeout <= 0, "WEBHOOKD_ATTEMPT_TIMEOUT must be positive, not %s", c.AttemptTimeout)
	bad(c.DisableAfter < 1, "WEBHOOKD_DISABLE_AFTER_FAILURES must be at least 1, not %d", c.DisableAfter)
	bad(c.DisableMinWindow < 0, "WEBHOOKD_DISABLE_MIN_WINDOW must not be negative, not %s", c.DisableMinWindow)
	bad(c.RateLimitPerMinute < 1, "WEBHOOKD_RATE_LIMIT_PER_MINUTE must be at least 1, not %d", c.RateLimitPerMinute)
	bad(c.BodyLimit < 1024, "WEBHOOKD_BODY_LIMIT must be at least 1024, not %d", c.BodyLimit)
	bad(c.Concurrency < 1, "WEBHOOKD_CONCURRENCY must be at least 1, not %d", c.Concurrency)
	bad(c.EndpointConcurrency < 0, "WEBHOOKD_ENDPOINT_CONCURRENCY must not be negative, not %d", c.EndpointConcurrency)
	bad(c.WorkerServers < 1, "WEBHOOKD_WORKER_SERVERS must be at least 1, not %d", c.WorkerServers)
	bad(c.QueueShards < 0 || c.QueueShards > delivery.MaxQueueShards, "WEBHOOKD_QUEUE_SHARDS must be 0 to %d, not %d",
		delivery.MaxQueueShards, c.QueueShards)
	bad(c.Retention < time.Hour, "WEBHOOKD_RETENTION must be at least 1h, not %s", c.Retention)
	bad(c.ProbeTimeout <= 0, "WEBHOOKD_PROBE_TIMEOUT must be positive, not %s", c.ProbeTimeout)
	bad(c.ShutdownTimeout <= 0, "WEBHOOKD_SHUTDOWN_TIMEOUT must be positive, not %s", c.ShutdownTimeout)
	bad(c.SweepInterval <= 0, "WEBHOOKD_SWEEP_INTERVAL must be positive, not %s", c.SweepInterval)
	bad(c.UnavailableRetryAfter < 1, "WEBHOOKD_UNAVAILABLE_RETRY_AFTER must be at least 1, not %d", c.UnavailableRetryAfter)
}

// checkOrigin accepts "" or an http(s) origin without path, query or fragment: the portal's
// page and the API it calls live at the root of one origin.
func checkOrigin(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin such as https://webhooks.example.com", s)
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

// endpointConcurrency is the attempts one endpoint may have in flight: the setting, or half of
// the worker's concurrency (at least 1).
func (c *Config) endpointConcurrency() int {
	if c.EndpointConcurrency > 0 {
		return c.EndpointConcurrency
	}
	return max(1, c.Concurrency/2)
}

// clusterQueueShards is the default shard count on Redis Cluster: enough to spread the queues
// over as many masters as a cluster usually has, few enough that idle polling stays cheap.
const clusterQueueShards = 16

// queueShards is the number of task queues: the setting, or 1 on one Redis and
// clusterQueueShards on a cluster.
func (c *Config) queueShards() int {
	switch {
	case c.QueueShards > 0:
		return c.QueueShards
	case c.RedisClusterAddrs != "":
		return clusterQueueShards
	}
	return 1
}
