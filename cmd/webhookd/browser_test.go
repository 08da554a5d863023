//go:build browser

package main

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/registry"
)

// TestDashboardInBrowser opens /admin/queues in headless Chromium (Debian's chromium package)
// and checks that the page renders and lists webhookd's queues, and that without the token it
// shows none. .ci/run runs it with -tags browser once chromium is installed.
func TestDashboardInBrowser(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium): %v", err)
	}
	st := newStack(t, map[string]string{"WEBHOOKD_ADMIN_TOKEN": "browser-t0ken"})
	svc := st.start(t)
	_, key := st.tenant(t)
	ep := svc.createEndpoint(t, key, newReceiver(t, statusResponder(200)).URL, []string{registry.EventScanCompleted}, nil)
	svc.waitDelivery(t, key, ep.ID, svc.publish(t, key, registry.EventScanCompleted, scanData()).ID, registry.DeliverySucceeded)

	u, _ := url.Parse(svc.URL + "/admin/queues")
	u.User = url.UserPassword("admin", "browser-t0ken")
	dom := chromiumDOM(t, bin, u.String())
	if !strings.Contains(dom, ">webhookd<") {
		t.Errorf("the rendered dashboard does not list the webhookd queue (%d bytes of DOM)", len(dom))
	}
	u.User = nil
	// Without credentials the browser gets the 401 (its envelope is checked in TestDashboard).
	if dom := chromiumDOM(t, bin, u.String()); strings.Contains(dom, ">webhookd<") {
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
