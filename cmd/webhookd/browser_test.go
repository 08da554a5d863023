//go:build browser

package main

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
)

// TestDashboardInBrowser opens /admin/queues in headless Chromium (Debian's chromium package)
// and checks that the page renders and lists each of webhookd's queue shards, and that without the token it
// shows none. .ci/run runs it with -tags browser once chromium is installed.
func TestDashboardInBrowser(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium): %v", err)
	}
	const shards = 3
	st := newStack(t, map[string]string{"WEBHOOKD_ADMIN_TOKEN": "browser-t0ken", "WEBHOOKD_QUEUE_SHARDS": strconv.Itoa(shards)})
	svc := st.start(t)
	_, key := st.tenant(t)
	// Endpoints until every shard has one: one event then puts tasks on every shard.
	rc := deliverytest.NewReceiver(t, deliverytest.Status(200))
	var eps []string
	for used := map[string]bool{}; len(used) < shards; {
		ep := svc.createEndpoint(t, key, rc.URL, []string{registry.EventScanCompleted}, nil)
		used[delivery.NewShards(shards).Of(ep.ID)] = true
		eps = append(eps, ep.ID)
	}
	ev := svc.publish(t, key, registry.EventScanCompleted, scanData())
	for _, eid := range eps {
		svc.waitDelivery(t, key, eid, ev.ID, registry.DeliverySucceeded)
	}

	u, _ := url.Parse(svc.URL + "/admin/queues")
	u.User = url.UserPassword("admin", "browser-t0ken")
	dom := chromiumDOM(t, bin, u.String())
	for _, q := range delivery.NewShards(shards).Names() {
		if !strings.Contains(dom, ">"+q+"<") {
			t.Errorf("the rendered dashboard does not list the shard %s (%d bytes of DOM)", q, len(dom))
		}
	}
	u.User = nil
	// Without credentials the browser gets the 401 (its envelope is checked in TestDashboard).
	if dom := chromiumDOM(t, bin, u.String()); strings.Contains(dom, ">"+delivery.Queue) {
		t.Errorf("without the token the browser shows:\n%.500s", dom)
	}
	shot := filepath.Join(os.TempDir(), "webhookd-dashboard.png")
	u.User = url.UserPassword("admin", "browser-t0ken")
	_ = exec.CommandContext(t.Context(), bin, append(chromiumFlags(t), "--window-size=1280,800", "--screenshot="+shot, u.String())...).Run()
	t.Logf("dashboard screenshot: %s", shot)
}

func chromiumFlags(t *testing.T) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=15000"}
}

// chromiumDOM loads page and returns the DOM after its scripts ran.
func chromiumDOM(t *testing.T, bin, page string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), bin, append(chromiumFlags(t), "--dump-dom", page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	return string(out)
}
