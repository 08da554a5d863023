package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// startListen runs `webhookd listen args...` in-process with the stack's environment and
// returns its URL and output.
func startListen(t *testing.T, st *stack, args ...string) (string, *syncBuffer) {
	t.Helper()
	out := new(syncBuffer)
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- listen(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), st.getenv, out, func(u string) { ready <- u })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen returned %v", err)
		}
	})
	select {
	case u := <-ready:
		return u, out
	case err := <-done:
		t.Fatalf("listen returned %v before listening", err)
	}
	return "", nil
}

// TestListenVerifiesDeliveries: serve on the embedded default, with no loopback allowance and
// no CA configured, delivers to `webhookd listen`, which prints one line per delivery saying
// whether its signature verified with a known secret (and the body with --verbose).
func TestListenVerifiesDeliveries(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"REDIS_URL": "", "WEBHOOKD_ALLOW_PRIVATE_CIDRS": "", "WEBHOOKD_EXTRA_CA_FILE": ""})
	url, out := startListen(t, st, "--verbose")
	home := st.getenv("WEBHOOKD_HOME")
	caFile := filepath.Join(home, caDirName, certFile)
	for _, want := range []string{"register this URL: " + url, caFile, filepath.Join(home, listenSecretsFile)} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("listen's output lacks %q:\n%s", want, out)
		}
	}
	svc := st.start(t)
	if log := svc.Stderr.String(); !strings.Contains(log, "loopback") || !strings.Contains(log, caFile) {
		t.Errorf("serve did not warn that it allows loopback and trusts %s:\n%s", caFile, log)
	}
	key := regexp.MustCompile(registry.KeyPrefix + `[0-9A-Za-z]+`).FindString(svc.Stdout.String())

	known := svc.createEndpoint(t, key, url, []string{registry.EventScanCompleted}, nil)
	unknown := svc.createEndpoint(t, key, url, []string{registry.EventScanFailed}, nil)
	secrets := filepath.Join(home, listenSecretsFile)
	if err := os.WriteFile(secrets, []byte("# endpoint secrets\n"+known.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := svc.publish(t, key, registry.EventScanCompleted, scanData())
	svc.waitDelivery(t, key, known.ID, ok.ID, registry.DeliverySucceeded)
	bad := svc.publish(t, key, registry.EventScanFailed, scanData())
	waitFor(t, patience, "listen to refuse the unverifiable delivery", func() bool {
		return strings.Contains(out.String(), "scan.failed  "+bad.ID+"  NOT verified: no matching signature")
	})
	if d := svc.delivery(t, key, unknown.ID, registry.DeliveryID(bad.ID, unknown.ID)); d.Status == registry.DeliverySucceeded {
		t.Errorf("a delivery listen could not verify succeeded")
	}
	line := regexp.MustCompile(`(?m)^\S+Z  scan\.completed  ` + ok.ID + `  verified\n\{"id":"` + ok.ID + `","type":"scan.completed"`)
	if !line.MatchString(out.String()) {
		t.Errorf("listen did not print a verified line with the body for %s:\n%s", ok.ID, out)
	}

	t.Run("the CA is made once", func(t *testing.T) {
		before, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		startListen(t, st)
		after, _ := os.ReadFile(caFile)
		if string(before) != string(after) {
			t.Error("a second listen made a new CA")
		}
	})
}
