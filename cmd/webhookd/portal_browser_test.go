//go:build browser

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
	"github.com/cert-ix/webhookd/registry"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
)

const xssDescription = `<img src=x onerror=alert(1)>`

// portalWorld is one webhookd with two tenants, an HTTPS receiver that fails or stalls on
// demand, the checking proxy the browser goes through, and a browser.
type portalWorld struct {
	st      *stack
	svc     *service
	key     string // tenant A's key (all scopes)
	keyB    string // tenant B's key
	rc      *deliverytest.Receiver
	failing atomic.Bool
	stall   atomic.Pointer[chan struct{}] // while set, the receiver waits for it to close
	mu      sync.Mutex
	ok      map[string]int // 2xx answers the receiver gave, by webhook-id
	px      *apiProxy
	browser context.Context

	endpoint       string    // the endpoint tenant A makes in the page
	beforeFailures time.Time // a moment before the receiver first failed
	scanID         string    // the scan whose callbacks failed
	started        string    // its scan.started event, which the endpoint was not subscribed to
	completed      string    // its scan.completed event, whose delivery failed for good
	held           string    // an event published while the endpoint was disabled
}

// TestPortalInBrowser drives the portal in headless Chromium against the real service, as one
// story: a fresh link, an endpoint made in the page, a test ping and its attempt; a receiver
// that fails until a scan's callback fails for good and the endpoint is disabled; re-enabling
// it from the page, a probation that fails, re-enabling again and seeing the held deliveries
// arrive; the secret, edits (rate limit, ordering, one more event type), filters; the last 24
// hours as a chart whose numbers match the stats route and the attempts; the failed scan found
// by its scan id; a recovery since before the failures that finishes with the counts the API
// reports and the receiver getting them; a manual retry; then an expired link and another
// tenant's link, which show no data. The XSS strings stay text and no dialog ever opens. Every
// answer the page gets is checked against the OpenAPI document, no request leaves the origin,
// and screenshots at 1280 and 390 px land in testdata/portal/.
func TestPortalInBrowser(t *testing.T) {
	w := newPortalWorld(t)
	wide := newTab(t, w.browser, 1280, 900)
	w.createAndTest(t, wide)
	pingHash := w.failUntilDisabled(t, wide)
	w.failProbation(t, wide)
	w.reenable(t, wide, pingHash)
	w.secretAndEdit(t, wide)
	keepFromDeleting(t, wide)
	w.chartMatchesStats(t, wide)
	w.findScan(t, wide)
	w.recoverSinceFailures(t, wide)
	w.retryAndShoot(t, wide, pingHash)
	narrow := w.narrow(t)
	others := w.noDataForOthers(t)
	for _, tb := range append([]*tab{wide, narrow}, others...) {
		tb.checkClean(t, w.px.URL)
	}
	w.px.verify(t)
}

// newPortalWorld starts webhookd with two attempts per delivery and disabling after three
// failures in a row, so that one scan's callback fails for good before the endpoint is disabled.
func newPortalWorld(t *testing.T) *portalWorld {
	w := &portalWorld{ok: map[string]int{}}
	w.st = newStack(t, map[string]string{"WEBHOOKD_DISABLE_AFTER_FAILURES": "3", "WEBHOOKD_DISABLE_MIN_WINDOW": "0",
		"WEBHOOKD_MAX_ATTEMPTS": "2", "WEBHOOKD_ATTEMPT_TIMEOUT": "20s"})
	w.svc = w.st.start(t)
	_, w.key = w.st.tenant(t)
	_, w.keyB = w.st.tenant(t)
	w.rc = deliverytest.NewReceiver(t, w.respond)
	t.Cleanup(w.unstall)
	w.px = newAPIProxy(t, w.svc.URL)
	w.browser = newBrowser(t)
	return w
}

// respond is the receiver: it waits while stalled, then answers 500 while failing, else 200.
func (w *portalWorld) respond(_ int, rw http.ResponseWriter, r *http.Request) {
	if stall := w.stall.Load(); stall != nil {
		select {
		case <-*stall:
		case <-r.Context().Done():
		}
	}
	if w.failing.Load() {
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(rw, "receiver down for maintenance")
		return
	}
	w.mu.Lock()
	w.ok[r.Header.Get("webhook-id")]++
	w.mu.Unlock()
	_, _ = io.WriteString(rw, `{"received":true}`)
}

// unstall lets a stalled receiver answer.
func (w *portalWorld) unstall() {
	if stall := w.stall.Swap(nil); stall != nil {
		close(*stall)
	}
}

// received is how many times the receiver answered 2xx to event evid.
func (w *portalWorld) received(evid string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok[evid]
}

func (w *portalWorld) createAndTest(t *testing.T, wide *tab) {
	wide.do(t, chromedp.Navigate(w.px.session(t, w.key, 3600)))
	wide.wait(t, `//h1[normalize-space()="Webhook endpoints"]`)
	if href := eval[string](t, wide, `location.href`); strings.Contains(href, "cix_ps_") {
		t.Errorf("the token stays in the address bar: %s", href)
	}
	wide.wait(t, `//p[@class="empty"][starts-with(normalize-space(), "No endpoints yet")]`)

	// Fill the form with the keyboard; Enter in the URL field submits it.
	wide.clickFresh(t, `//a[normalize-space()="New endpoint"]`)
	wide.fresh(t, chromedp.WaitVisible(chromedp.ID("ep-url")),
		chromedp.SendKeys(chromedp.ID("ep-description"), xssDescription),
		chromedp.SendKeys(chromedp.ID("ep-url"), w.rc.URL+kb.Enter))
	wide.wait(t, `//h1[@id="ep-title"]`)
	hash := eval[string](t, wide, `location.hash`)
	w.endpoint = strings.TrimPrefix(hash, "#/endpoints/")
	if got := w.svc.endpoint(t, w.key, w.endpoint); got.URL != w.rc.URL {
		t.Fatalf("the page made endpoint %+v (from %s), want URL %s", got, hash, w.rc.URL)
	}
	if got := eval[string](t, wide, `document.querySelector("main .description").textContent`); got != xssDescription {
		t.Errorf("description shows %q, want the text %q", got, xssDescription)
	}
	if n := eval[int](t, wide, `document.querySelectorAll("img").length`); n != 0 {
		t.Errorf("the description became %d <img> element(s)", n)
	}
	if unlabelled := eval[int](t, wide, `[...document.querySelectorAll("input,select,textarea")].filter(e => e.labels.length === 0).length`); unlabelled != 0 {
		t.Errorf("%d form controls have no label", unlabelled)
	}
	wide.wait(t, `//dt[normalize-space()="Attempts at once"]/following-sibling::dd[1][normalize-space()="4 (the most the service allows)"]`)

	wide.clickFresh(t, `//button[normalize-space()="Send test"]`)
	wide.wait(t, `//td[@data-label="Response"][normalize-space()="HTTP 200"]`)
	wide.wait(t, `//td[@data-label="Response body"]//pre[normalize-space()='{"received":true}']`)
	wide.wait(t, `//span[contains(@class,"badge")][normalize-space()="succeeded"]`)
}

// failUntilDisabled makes the receiver fail: a scan's scan.started (the endpoint does not take
// that type) and scan.completed are published, and the latter fails both its attempts; then a
// test sent from the page fails too, the third failure in a row, which disables the endpoint.
// The page shows the endpoint degraded after the second failure, the 500s and their body, the ping held, and the endpoint disabled. It returns
// the ping's route.
func (w *portalWorld) failUntilDisabled(t *testing.T, wide *tab) string {
	w.beforeFailures = time.Now()
	w.failing.Store(true)
	w.scanID = uuid.NewString()
	data := map[string]any{"scanId": w.scanID, "scanType": "zap", "target": xssDescription}
	w.started = w.svc.publish(t, w.key, registry.EventScanStarted, data).ID
	w.completed = w.svc.publish(t, w.key, registry.EventScanCompleted, data).ID
	w.svc.waitDelivery(t, w.key, w.endpoint, w.completed, registry.DeliveryFailed)

	wide.clickFresh(t, `//a[normalize-space()="← Endpoint"]`)
	// Two failures in a row of three that disable: degraded.
	wide.wait(t, `//div[@class="health"]/span[contains(@class,"badge-warn")][normalize-space()="Degraded"]`)
	wide.clickFresh(t, `//button[normalize-space()="Send test"]`)
	wide.wait(t, `//td[@data-label="Response"][normalize-space()="HTTP 500"]`)
	wide.wait(t, `//td[@data-label="Response body"]//pre[normalize-space()="receiver down for maintenance"]`)
	pingHash := eval[string](t, wide, `location.hash`)
	waitFor(t, patience, "the endpoint to be disabled", func() bool {
		return w.svc.endpoint(t, w.key, w.endpoint).Status == registry.StatusDisabled
	})
	wide.wait(t, `//span[contains(@class,"badge")][normalize-space()="held"]`)
	wide.clickFresh(t, `//a[normalize-space()="← Endpoint"]`)
	wide.wait(t, `//span[contains(@class,"badge-bad")][normalize-space()="Disabled"]`)
	wide.wait(t, `//span[@class="reason"][normalize-space()="after repeated failed deliveries"]`)
	wide.wait(t, `//span[@class="failures"][normalize-space()="3 consecutive failures"]`)
	if !eval[bool](t, wide, `[...document.querySelectorAll("button")].find(b => b.textContent === "Send test").disabled`) {
		t.Error("Send test is enabled on a disabled endpoint")
	}
	if !eval[bool](t, wide, `[...document.querySelectorAll("button")].find(b => b.textContent === "Start recovery").disabled`) {
		t.Error("Start recovery is enabled on a disabled endpoint")
	}
	return pingHash
}

// failProbation publishes an event while the endpoint is disabled (held), and enables it while
// the receiver still fails: the page shows the endpoint on probation, one attempt at a time,
// while that attempt is under way; when it fails the endpoint is disabled again, with the
// reason shown.
func (w *portalWorld) failProbation(t *testing.T, wide *tab) {
	w.held = w.svc.publish(t, w.key, registry.EventScanCompleted, scanData()).ID
	w.svc.waitDelivery(t, w.key, w.endpoint, w.held, registry.DeliveryHeld)
	stall := make(chan struct{})
	w.stall.Store(&stall)
	wide.clickFresh(t, `//button[normalize-space()="Enable"]`)
	wide.wait(t, `//p[@class="notice"][normalize-space()="Endpoint enabled; 2 held deliveries requeued. `+
		`It is on probation: one attempt at a time until one succeeds."]`)
	wide.wait(t, `//div[@class="health"]/span[contains(@class,"badge-warn")][normalize-space()="Probation"]`)
	wide.wait(t, `//dt[normalize-space()="Attempts at once"]/following-sibling::dd[1][starts-with(normalize-space(),"1 of 4, on probation")]`)
	w.unstall()
	waitFor(t, patience, "the endpoint to fail its probation", func() bool {
		e := w.svc.endpoint(t, w.key, w.endpoint)
		return e.DisabledReason != nil && *e.DisabledReason == "probation_failed"
	})
	wide.clickFresh(t, `//button[normalize-space()="Refresh"]`)
	wide.wait(t, `//span[@class="reason"][normalize-space()="the first attempt after it was enabled failed"]`)
}

// reenable enables the endpoint with the receiver back and sees both held deliveries arrive.
func (w *portalWorld) reenable(t *testing.T, wide *tab, pingHash string) {
	ping := pingHash[strings.LastIndex(pingHash, "/")+1:]
	waitFor(t, patience, "both deliveries to be held again", func() bool {
		return w.svc.delivery(t, w.key, w.endpoint, ping).Status == registry.DeliveryHeld &&
			w.svc.delivery(t, w.key, w.endpoint, registry.DeliveryID(w.held, w.endpoint)).Status == registry.DeliveryHeld
	})
	w.failing.Store(false)
	wide.clickFresh(t, `//button[normalize-space()="Enable"]`)
	wide.wait(t, `//p[@class="notice"][starts-with(normalize-space(),"Endpoint enabled; 2 held deliveries requeued.")]`)
	wide.wait(t, `//span[contains(@class,"badge-ok")][normalize-space()="Active"]`)
	w.svc.waitDelivery(t, w.key, w.endpoint, w.held, registry.DeliverySucceeded)
	waitFor(t, patience, "the ping to succeed", func() bool {
		return w.svc.delivery(t, w.key, w.endpoint, ping).Status == registry.DeliverySucceeded
	})
	if n := w.received(w.held); n != 1 {
		t.Errorf("the receiver took the held event %d times, want 1", n)
	}
	wide.clickFresh(t, `//button[normalize-space()="Refresh"]`)
	wide.wait(t, `//tr[.//code[normalize-space()="`+w.held+`"]]//span[normalize-space()="succeeded"]`)

	// The log by status: only the failed one (the scan's callback) and only succeeded ones.
	wide.fresh(t, chromedp.SetValue(chromedp.ID("delivery-status"), "failed"),
		chromedp.Click(`//form[@aria-label="Filter deliveries"]//button`))
	wide.wait(t, `//tr[.//code[normalize-space()="`+w.completed+`"]]//span[normalize-space()="failed"]`)
	if n := eval[int](t, wide, `document.querySelectorAll("td[data-label=Status] .badge").length`); n != 1 {
		t.Errorf("the failed filter lists %d deliveries, want the scan's callback alone", n)
	}
	wide.fresh(t, chromedp.SetValue(chromedp.ID("delivery-status"), "succeeded"),
		chromedp.Click(`//form[@aria-label="Filter deliveries"]//button`))
	wide.wait(t, `//tr[.//code[normalize-space()="`+w.held+`"]]`)
	if n := eval[int](t, wide, `document.querySelectorAll("td[data-label=Status] .badge:not(.badge-ok)").length`); n != 0 {
		t.Errorf("the succeeded filter lists %d deliveries of other statuses", n)
	}
}

// keepFromDeleting asks to delete the endpoint on its page and takes it back, by Escape and by
// "Keep it": each time the Delete… button is back, usable and focused, and nothing is deleted.
func keepFromDeleting(t *testing.T, wide *tab) {
	const ask, question = `//button[normalize-space()="Delete…"]`, `//span[normalize-space()="Delete this endpoint?"]`
	for _, takeBack := range []chromedp.Action[chromedp.Void]{chromedp.KeyEvent(kb.Escape),
		chromedp.Click(`//button[normalize-space()="Keep it"]`, chromedp.NodeVisible)} {
		wide.click(t, ask)
		wide.wait(t, question)
		wide.do(t, takeBack)
		wide.wait(t, ask+`[not(@disabled)]`)
		if got := eval[string](t, wide, `document.activeElement ? document.activeElement.textContent : ""`); got != "Delete…" {
			t.Errorf("after taking the question back the focus is on %q, want the Delete… button", got)
		}
	}
}

// secretAndEdit reveals and rotates the secret, disables and enables by hand, and edits: a
// header, a rate limit, per-scan ordering and one more event type (scan.started, which the
// recovery below delivers as missing).
func (w *portalWorld) secretAndEdit(t *testing.T, wide *tab) {
	var sec struct{ Secret string }
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/webhooks/"+w.endpoint+"/secret", nil).want(t, http.StatusOK, &sec)
	wide.click(t, `//button[normalize-space()="Reveal secret"]`)
	wide.wait(t, `//code[@class="secret-value"][normalize-space()="`+sec.Secret+`"]`)
	wide.click(t, `//button[normalize-space()="Rotate secret"]`)
	wide.wait(t, `//dt[normalize-space()="Previous secret"]/following-sibling::dd/code[normalize-space()="`+sec.Secret+`"]`)
	var rotated struct{ Secret string }
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/webhooks/"+w.endpoint+"/secret", nil).want(t, http.StatusOK, &rotated)
	wide.wait(t, `//code[@class="secret-value"][normalize-space()="`+rotated.Secret+`"]`)

	wide.clickFresh(t, `//button[normalize-space()="Disable"]`)
	wide.wait(t, `//span[@class="reason"][normalize-space()="disabled by hand"]`)
	wide.clickFresh(t, `//button[normalize-space()="Enable"]`)
	wide.wait(t, `//span[contains(@class,"badge-ok")][normalize-space()="Active"]`)

	wide.clickFresh(t, `//a[normalize-space()="Edit"]`)
	wide.do(t, chromedp.WaitVisible(chromedp.ID("ep-description")),
		chromedp.SetValue(chromedp.ID("ep-description"), "SOC pipeline "+xssDescription),
		chromedp.SetValue(chromedp.ID("ep-headers"), "X-Team: soc"),
		chromedp.SetValue(chromedp.ID("ep-ordering"), "scan"),
		chromedp.SendKeys(chromedp.ID("ep-rate"), "50"),
		chromedp.Click(`//input[@name="events"][@value="scan.started"]`))
	wide.clickFresh(t, `//button[normalize-space()="Save changes"]`)
	wide.wait(t, `//p[@class="notice"][normalize-space()="Endpoint saved."]`)
	wide.wait(t, `//dt[normalize-space()="Custom headers"]/following-sibling::dd[1][normalize-space()="X-Team"]`)
	wide.wait(t, `//dt[normalize-space()="Rate limit"]/following-sibling::dd[1][normalize-space()="at most 50 a second"]`)
	wide.wait(t, `//dt[normalize-space()="Ordering"]/following-sibling::dd[1][starts-with(normalize-space(),"per scan")]`)
	var e struct {
		Headers            map[string]string
		Events             []string
		Ordering           string
		RateLimitPerSecond *int
	}
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/webhooks/"+w.endpoint, nil).want(t, http.StatusOK, &e)
	want := []string{registry.EventScanStarted, registry.EventScanCompleted, registry.EventScanFailed}
	if e.Headers["X-Team"] != "soc" || e.Ordering != "scan" || e.RateLimitPerSecond == nil || *e.RateLimitPerSecond != 50 ||
		!sameSet(e.Events, want) {
		t.Errorf("after the edit: %+v, want X-Team soc, ordering scan, rate limit 50, events %v", e, want)
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// retryAndShoot retries the ping that failed and was held, then takes the wide screenshots.
func (w *portalWorld) retryAndShoot(t *testing.T, wide *tab, pingHash string) {
	n := len(w.svc.delivery(t, w.key, w.endpoint, pingHash[strings.LastIndex(pingHash, "/")+1:]).Attempts)
	attempt := func(n int) string {
		return fmt.Sprintf(`//td[@data-label="#"][normalize-space()="%d"]/following-sibling::td[@data-label="Response"][normalize-space()="HTTP 200"]`, n)
	}
	wide.fresh(t, chromedp.Evaluate[chromedp.Void](`location.hash = `+jsString(pingHash)))
	wide.wait(t, attempt(n))
	wide.clickFresh(t, `//button[normalize-space()="Retry now"]`)
	wide.wait(t, attempt(n+1))
	wide.screenshot(t, "delivery-1280")
	wide.clickFresh(t, `//a[normalize-space()="← Endpoint"]`)
	wide.wait(t, `//h2[normalize-space()="Deliveries"]/following-sibling::div//table`)
	wide.notWiderThanScreen(t, "the endpoint page at 1280 px")
	wide.screenshot(t, "endpoint-1280")
	wide.clickFresh(t, `//a[normalize-space()="← All endpoints"]`)
	wide.wait(t, `//td[@data-label="Health"]//span[normalize-space()="Active"]`)
	wide.screenshot(t, "endpoints-1280")
}

// narrow opens the same link in a 390 px tab: nothing scrolls sideways, on the endpoint's page
// (its chart included) or on the scan's events.
func (w *portalWorld) narrow(t *testing.T) *tab {
	nt := newTab(t, w.browser, 390, 844)
	nt.do(t, chromedp.Navigate(w.px.session(t, w.key, 600)))
	nt.wait(t, `//a[@class="url"][normalize-space()="`+w.rc.URL+`"]`)
	nt.fresh(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/endpoints/`+w.endpoint+`"`))
	nt.wait(t, `//h2[normalize-space()="Deliveries"]/following-sibling::div//table`)
	nt.notWiderThanScreen(t, "the endpoint page")
	nt.screenshot(t, "endpoint-390")
	nt.screenshotOf(t, "chart-390", `//section[@aria-labelledby="chart-title"]`)
	nt.do(t, chromedp.Evaluate[chromedp.Void](`document.getElementById("dlv-title").scrollIntoView()`))
	nt.screenshot(t, "deliveries-390")
	nt.fresh(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/events?scanId=`+w.scanID+`"`))
	nt.wait(t, `//td[@data-label="Type"][normalize-space()="scan.completed"]`)
	nt.notWiderThanScreen(t, "the scan's events")
	return nt
}

// notWiderThanScreen fails if the page scrolls sideways.
func (tb *tab) notWiderThanScreen(t *testing.T, what string) {
	t.Helper()
	if over := eval[bool](t, tb, `document.documentElement.scrollWidth > innerWidth`); over {
		t.Errorf("%s scrolls sideways (%d px wide in %d)", what, eval[int](t, tb, `document.documentElement.scrollWidth`),
			eval[int](t, tb, `innerWidth`))
	}
}

// noDataForOthers: an expired link, a forged one and another tenant's show none of A's data.
func (w *portalWorld) noDataForOthers(t *testing.T) []*tab {
	expiring := w.px.session(t, w.key, 1)
	token := expiring[strings.Index(expiring, "#")+1:]
	waitFor(t, patience, "the one-second link to expire", func() bool {
		return w.svc.call(t, "", http.MethodGet, "/api/v1/webhooks", nil, "X-Portal-Token", token).Env.Code == "PORTAL_SESSION_EXPIRED"
	})
	expired := newTab(t, w.browser, 1280, 900)
	expired.do(t, chromedp.Navigate(expiring))
	expired.wait(t, `//h1[@id="session-over"][normalize-space()="This portal link has expired"]`)

	forged := newTab(t, w.browser, 1280, 900)
	forged.do(t, chromedp.Navigate(w.px.URL+"/portal#"+changeLast(token)))
	forged.wait(t, `//h1[@id="session-over"][normalize-space()="This portal link is not valid"]`)

	other := newTab(t, w.browser, 1280, 900)
	other.do(t, chromedp.Navigate(w.px.session(t, w.keyB, 600)))
	other.wait(t, `//p[@class="empty"][starts-with(normalize-space(), "No endpoints yet")]`)
	other.do(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/endpoints/`+w.endpoint+`"`))
	other.wait(t, `//div[@class="error"]/p[normalize-space()="Webhook not found"]`)
	other.do(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/events?scanId=`+w.scanID+`"`))
	other.wait(t, `//p[@class="empty"][normalize-space()="No events for this scan id."]`)
	other.do(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/events/`+w.completed+`"`))
	other.wait(t, `//div[@class="error"]/p[normalize-space()="Event not found"]`)
	for _, tb := range []*tab{expired, forged, other} {
		if text := tb.mainText(t); strings.Contains(text, w.rc.URL) || strings.Contains(text, "SOC pipeline") {
			t.Errorf("a tab without A's session shows A's data:\n%s", text)
		}
	}
	return []*tab{expired, forged, other}
}

func changeLast(s string) string {
	if strings.HasSuffix(s, "A") {
		return s[:len(s)-1] + "B"
	}
	return s[:len(s)-1] + "A"
}

// jsString quotes s as a JavaScript string literal (s is a route the page made: no quotes).
func jsString(s string) string { return `"` + strings.ReplaceAll(s, `"`, ``) + `"` }
