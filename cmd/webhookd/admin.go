package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/cert-ix/webhookd/registry"
)

// adminStore connects to the configured Redis for an admin command. The embedded Redis is
// per-process, so admin commands require REDIS_URL or REDIS_CLUSTER_ADDRS.
func adminStore(ctx context.Context, getenv func(string) string, stderr io.Writer) (*registry.Store, func(), error) {
	c := &Config{RedisURL: getenv("REDIS_URL"), RedisClusterAddrs: getenv("REDIS_CLUSTER_ADDRS")}
	if c.RedisURL == "" && c.RedisClusterAddrs == "" {
		return nil, nil, errors.New("admin commands need REDIS_URL (or REDIS_CLUSTER_ADDRS): the embedded Redis lives inside `webhookd serve`, which prints a demo key at start")
	}
	rc, err := connectRedis(ctx, c, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		return nil, nil, err
	}
	s, err := registry.New(registry.Config{Client: rc.client})
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return s, rc.Close, nil
}

// parseFlags parses a command's flags; an argument left over (a typo, a value without its
// flag) is a usage error rather than something silently ignored.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func adminTenants(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("webhookd tenants create", flag.ContinueOnError)
		fs.SetOutput(stderr)
		name := fs.String("name", "", "tenant name (required)")
		quota := fs.Int64("monthly-event-quota", 0, "events per UTC calendar month; 0: unlimited")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if strings.TrimSpace(*name) == "" || *quota < 0 {
			return usageError{"tenants create needs --name and a --monthly-event-quota >= 0"}
		}
		s, done, err := adminStore(ctx, getenv, stderr)
		if err != nil {
			return err
		}
		defer done()
		t, err := s.CreateTenant(ctx, *name, *quota)
		if err != nil {
			return err
		}
		return printJSON(stdout, t)
	case "suspend", "resume":
		if len(args) != 2 {
			return usageError{"usage: webhookd tenants " + args[0] + " ID"}
		}
		s, done, err := adminStore(ctx, getenv, stderr)
		if err != nil {
			return err
		}
		defer done()
		status := registry.StatusSuspended
		if args[0] == "resume" {
			status = registry.StatusActive
		}
		t, err := s.SetTenantStatus(ctx, args[1], status)
		if err != nil {
			return err
		}
		return printJSON(stdout, t)
	}
	return usageError{"unknown tenants command " + args[0]}
}

// createdKey is what `keys create` prints: the key's record and, this once, the plain key.
type createdKey struct {
	*registry.APIKey
	Key string `json:"key"`
}

func adminKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "create":
		p, err := parseKeyCreate(args[1:], stderr)
		if err != nil {
			return err
		}
		s, done, err := adminStore(ctx, getenv, stderr)
		if err != nil {
			return err
		}
		defer done()
		k, plain, err := s.CreateAPIKey(ctx, p)
		if err != nil {
			return err
		}
		k.Hash = ""
		return printJSON(stdout, createdKey{APIKey: k, Key: plain})
	case "revoke", "suspend", "resume":
		if len(args) != 2 {
			return usageError{"usage: webhookd keys " + args[0] + " ID"}
		}
		s, done, err := adminStore(ctx, getenv, stderr)
		if err != nil {
			return err
		}
		defer done()
		status := map[string]string{"revoke": registry.StatusRevoked, "suspend": registry.StatusSuspended,
			"resume": registry.StatusActive}[args[0]]
		k, err := s.SetAPIKeyStatus(ctx, args[1], status)
		if err != nil {
			return err
		}
		k.Hash = ""
		return printJSON(stdout, k)
	case "list":
		return listKeys(ctx, args[1:], getenv, stdout, stderr)
	}
	return usageError{"unknown keys command " + args[0]}
}

func listKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhookd keys list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant id (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *tenant == "" {
		return usageError{"keys list needs --tenant"}
	}
	s, done, err := adminStore(ctx, getenv, stderr)
	if err != nil {
		return err
	}
	defer done()
	keys, err := s.ListAPIKeys(ctx, *tenant)
	if err != nil {
		return err
	}
	for _, k := range keys {
		k.Hash = ""
	}
	return printJSON(stdout, keys)
}

func parseKeyCreate(args []string, stderr io.Writer) (registry.NewKeyParams, error) {
	fs := flag.NewFlagSet("webhookd keys create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant id (required)")
	scopes := fs.String("scopes", "", "comma-separated: webhooks:read, webhooks:write, events:write (required)")
	expires := fs.String("expires", "", "expiry time, RFC 3339")
	ips := fs.String("allowed-ips", "", "comma-separated IPs or CIDRs; empty: any")
	scans := fs.String("allowed-scan-types", "", "comma-separated scan engines; empty: all")
	rate := fs.Int("rate-limit-per-minute", 0, "requests per minute; 0: the service default")
	name := fs.String("name", "", "a name for the key")
	if err := parseFlags(fs, args); err != nil {
		return registry.NewKeyParams{}, err
	}
	p := registry.NewKeyParams{TenantID: *tenant, Name: *name, Scopes: splitList(*scopes),
		AllowedIPAddresses: splitList(*ips), AllowedScanTypes: splitList(*scans), RateLimitPerMinute: *rate}
	if p.TenantID == "" {
		return p, usageError{"keys create needs --tenant"}
	}
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return p, usageError{fmt.Sprintf("--expires %q is not an RFC 3339 time such as 2027-01-31T00:00:00Z", *expires)}
		}
		if !t.After(time.Now()) {
			return p, usageError{fmt.Sprintf("--expires %s is not in the future: the key would never work", *expires)}
		}
		p.ExpiresAt = &t
	}
	if err := p.Validate(); err != nil {
		return p, usageError{err.Error()}
	}
	return p, nil
}
