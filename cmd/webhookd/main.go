// Command webhookd is the webhook delivery service of the Cert-IX Scan API: `webhookd serve`
// runs the API and the delivery workers; `webhookd listen` is a local HTTPS receiver for
// development; `webhookd tenants ...` and `webhookd keys ...` are the admin commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is the garbage collector's target (GOGC) unless GOGC is set: the heap may grow to
// five times what is live before a collection, not twice. webhookd's live heap is small (tens
// of MiB) and it allocates fast, so at Go's default it collects many times a second, each time
// scanning every goroutine's stack. Measured (BENCHMARKS.md): 8-12 % less of webhookd's CPU
// per delivery, for 17-30 MiB more peak RSS under a flood; GOGC=100 restores Go's default.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhookd:", err)
		os.Exit(exitCode(err))
	}
}

const usage = `usage:
  webhookd serve [--role api|worker|all] [flags]     (webhookd serve --help lists every setting)
  webhookd listen [--addr 127.0.0.1:9443] [--secret whsec_...] [--verbose]   (a local receiver)
  webhookd tenants create --name N [--monthly-event-quota Q]
  webhookd tenants suspend|resume ID
  webhookd keys create --tenant ID --scopes a,b [--expires RFC3339] [--allowed-ips ip-or-cidr,...]
                       [--allowed-scan-types zap,nmap,...] [--rate-limit-per-minute N] [--name N]
  webhookd keys revoke|suspend|resume ID
  webhookd keys list --tenant ID
  webhookd version`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	if _, ok := err.(usageError); ok {
		return 2
	}
	return 1
}

// run is the whole program, with its environment passed in so tests can run it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usage}
	}
	switch args[0] {
	case "serve":
		c, err := parseServe(args[1:], getenv, stderr)
		var help helpRequested
		if errors.As(err, &help) {
			fmt.Fprint(stdout, help.text)
			return nil
		}
		if err != nil {
			return usageError{err.Error()}
		}
		return serve(ctx, c, stdout, stderr, nil)
	case "listen":
		return listen(ctx, args[1:], getenv, stdout, nil)
	case "tenants":
		return adminTenants(ctx, args[1:], getenv, stdout, stderr)
	case "keys":
		return adminKeys(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "webhookd", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return usageError{"unknown command " + args[0] + "\n" + usage}
}
