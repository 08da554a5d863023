package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// TestEmbeddedMode: without REDIS_URL, serve starts an embedded Redis, prints its address and
// a working demo key on stdout, warns in the log (which never shows the key), and delivers.
func TestEmbeddedMode(t *testing.T) {
	t.Parallel()
	st := newStack(t, map[string]string{"REDIS_URL": ""})
	svc := st.start(t)
	out := svc.Stdout.String()
	if !regexp.MustCompile(`embedded Redis on 127\.0\.0\.1:\d+; data is in memory only`).MatchString(out) {
		t.Errorf("stdout does not name the embedded Redis address: %q", out)
	}
	key := regexp.MustCompile(`\b` + registry.KeyPrefix + `[0-9A-Za-z]{32,}\b`).FindString(out)
	if key == "" {
		t.Fatalf("stdout has no demo key: %q", out)
	}
	log := svc.Stderr.String()
	if !strings.Contains(log, "EMBEDDED") || !strings.Contains(log, "IN MEMORY ONLY") {
		t.Errorf("log has no in-memory warning:\n%s", log)
	}

	rc := deliverytest.NewReceiver(t, deliverytest.Status(200))
	ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	svc.waitDelivery(t, key, ep.ID, ev.ID, registry.DeliverySucceeded)
	if n := len(rc.HitsFor(ev.ID)); n != 1 {
		t.Errorf("receiver got the event %d times, want 1", n)
	}
	deliverytest.CheckSigned(t, rc.HitsFor(ev.ID)[0], ev.ID, ep.Secret)
	// Checked last, after requests made with the key have been logged.
	if log := svc.Stderr.String(); strings.Contains(log, key) || strings.Contains(log, ep.Secret) {
		t.Error("the log contains the demo key or an endpoint secret")
	}
}
