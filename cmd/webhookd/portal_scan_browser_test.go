//go:build browser

package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/registry"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// hourCount is one hour of an endpoint's attempts, as the stats route and the page show it.
type hourCount struct {
	Hour      string `json:"hour"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
}

// chartMatchesStats reads the 24-hour chart from the page (its sentence, its bars and, opened
// with the keyboard, its table) and compares it with the stats route hour by hour, and the
// totals with what happened: the endpoint's attempts as its delivery log records them (so
// far: the first ping, the second one and the held event succeeded; the scan's callback
// twice, the second ping and the probation attempt failed).
func (w *portalWorld) chartMatchesStats(t *testing.T, wide *tab) {
	api, page := w.readChart(t, wide)
	if len(api) > 0 && len(page) > 0 && api[0].Hour != page[0].Hour { // an hour began between the two reads
		api, page = w.readChart(t, wide)
	}
	if len(api) != 24 || !slices.Equal(page, api) {
		t.Errorf("the chart's table shows\n%v\nthe stats route answers\n%v", page, api)
	}
	if bars := eval[[]hourCount](t, wide, `[...document.querySelectorAll("svg.chart-bars g.hour")].map(g => `+
		`({hour: g.dataset.hour, succeeded: Number(g.dataset.succeeded), failed: Number(g.dataset.failed)}))`); !slices.Equal(bars, api) {
		t.Errorf("the chart's bars show\n%v\nthe stats route answers\n%v", bars, api)
	}
	var total hourCount
	for _, h := range api {
		total.Succeeded, total.Failed = total.Succeeded+h.Succeeded, total.Failed+h.Failed
	}
	summary := eval[hourCount](t, wide, `(s => ({succeeded: Number(s.dataset.succeeded), failed: Number(s.dataset.failed)}))`+
		`(document.getElementById("chart-summary"))`)
	attempts := w.tallyAttempts(t)
	if summary != total || attempts != total || total.Succeeded < 3 || total.Failed < 4 {
		t.Errorf("succeeded and failed: the page's summary %+v, the stats route %+v, the delivery log's attempts %+v; want equal, at least 3 and 4",
			summary, total, attempts)
	}
	wide.wait(t, fmt.Sprintf(`//p[@id="chart-summary"][contains(normalize-space(), "%d succeeded, %d failed")]`, total.Succeeded, total.Failed))
	wide.do(t, chromedp.KeyEvent(kb.Enter)) // the table's summary still has the focus: close it
	wide.wait(t, `//details[@class="chart-table"][not(@open)]`)
	wide.screenshotOf(t, "chart-1280", `//section[@aria-labelledby="chart-title"]`)
}

// readChart renders the endpoint's page again, opens the chart's table with the keyboard and
// returns the stats route's hours and the table's.
func (w *portalWorld) readChart(t *testing.T, wide *tab) (api, page []hourCount) {
	wide.clickFresh(t, `//button[normalize-space()="Refresh"]`)
	wide.do(t, chromedp.Focus(`//details[@class="chart-table"]/summary`), chromedp.KeyEvent(kb.Enter))
	wide.wait(t, `//details[@class="chart-table"][@open]//table`)
	page = eval[[]hourCount](t, wide, `[...document.querySelectorAll(".chart-table tbody tr")].map(tr => ({`+
		`hour: tr.querySelector("time").getAttribute("datetime"), `+
		`succeeded: Number(tr.querySelector("[data-count=succeeded]").textContent), `+
		`failed: Number(tr.querySelector("[data-count=failed]").textContent)}))`)
	var stats struct{ Hours []hourCount }
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/webhooks/"+w.endpoint+"/stats?window=24h", nil).want(t, http.StatusOK, &stats)
	return stats.Hours, page
}

// tallyAttempts counts the endpoint's attempts that got a 2xx and those that did not, from
// every delivery's attempts.
func (w *portalWorld) tallyAttempts(t *testing.T) hourCount {
	var n hourCount
	for _, d := range w.svc.deliveries(t, w.key, w.endpoint, "") {
		for _, a := range w.svc.delivery(t, w.key, w.endpoint, d.ID).Attempts {
			if a.StatusCode >= 200 && a.StatusCode < 300 {
				n.Succeeded++
			} else {
				n.Failed++
			}
		}
	}
	return n
}

// findScan searches the failed scan by its id from the endpoint list: the page lists the
// events the API has for it, newest first; the scan.completed one shows its failed delivery to
// the endpoint (two attempts, last answer 500), leading to those attempts; the scan.started
// one has no delivery, as the endpoint did not take that type when it was published. The
// event's data (with an XSS string in it) stays text.
func (w *portalWorld) findScan(t *testing.T, wide *tab) {
	wide.clickFresh(t, `//nav[@aria-label="Portal"]/a[normalize-space()="Endpoints"]`)
	wide.fresh(t, chromedp.SendKeys(chromedp.ID("scan-id"), w.scanID+kb.Enter))
	wide.wait(t, `//h1[normalize-space()="Events of scan `+w.scanID+`"]`)
	var events []struct{ ID string }
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/events?scanId="+w.scanID, nil).want(t, http.StatusOK, &events)
	var ids []string
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	shown := eval[[]string](t, wide, `[...document.querySelectorAll("td[data-label='Event id'] code")].map(c => c.textContent)`)
	if want := []string{w.completed, w.started}; !slices.Equal(ids, want) || !slices.Equal(shown, ids) {
		t.Errorf("the scan's events: the page shows %v, the API answers %v, want %v", shown, ids, want)
	}
	wide.screenshot(t, "scan-search-1280")

	wide.clickFresh(t, `//tr[td[@data-label="Type"][normalize-space()="scan.completed"]]//td[@data-label="Published"]//a`)
	wide.wait(t, `//h1[normalize-space()="Event scan.completed"]`)
	var ev struct {
		Deliveries []struct {
			WebhookID      string
			Status         string
			AttemptCount   int
			LastStatusCode int
		}
	}
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/events/"+w.completed, nil).want(t, http.StatusOK, &ev)
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].Status != registry.DeliveryFailed || ev.Deliveries[0].AttemptCount != 2 ||
		ev.Deliveries[0].LastStatusCode != http.StatusInternalServerError {
		t.Fatalf("GET /events/%s deliveries = %+v, want one failed after 2 attempts, last answer 500", w.completed, ev.Deliveries)
	}
	d := ev.Deliveries[0]
	wide.wait(t, fmt.Sprintf(`//tr[td[@data-label="Endpoint"]//a[normalize-space()=%q]][td[@data-label="Status"]//span[normalize-space()=%q]]`+
		`[td[@data-label="Attempts"][normalize-space()="%d"]][td[@data-label="Last answer"][normalize-space()="HTTP %d"]]`,
		w.rc.URL, d.Status, d.AttemptCount, d.LastStatusCode))
	if data := eval[string](t, wide, `document.querySelector("main pre.body").textContent`); !strings.Contains(data, `"target": "`+xssDescription+`"`) {
		t.Errorf("the event's data shows %q, want the XSS string as text", data)
	}
	if n := eval[int](t, wide, `document.querySelectorAll("img").length`); n != 0 {
		t.Errorf("the event's data became %d <img> element(s)", n)
	}
	wide.screenshot(t, "event-1280")
	wide.clickFresh(t, `//a[normalize-space()="Attempts →"]`)
	wide.wait(t, `//td[@data-label="#"][normalize-space()="2"]/following-sibling::td[@data-label="Response"][normalize-space()="HTTP 500"]`)

	wide.clickFresh(t, `//td[@data-label="#"]/ancestor::main//a[normalize-space()="`+w.completed+`"]`)
	wide.clickFresh(t, `//a[normalize-space()="← The scan's events"]`)
	wide.clickFresh(t, `//tr[td[@data-label="Type"][normalize-space()="scan.started"]]//td[@data-label="Published"]//a`)
	wide.wait(t, `//p[@class="empty"][starts-with(normalize-space(),"No endpoint was subscribed to this event")]`)
}

// recoverSinceFailures runs a recovery from the endpoint's page since a moment before the
// receiver first failed, of failed and missing deliveries: the page follows it until it is
// done and shows the counts the API reports (the scan's failed callback queued again, its
// scan.started made), and the receiver gets both.
func (w *portalWorld) recoverSinceFailures(t *testing.T, wide *tab) {
	wide.fresh(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/endpoints/`+w.endpoint+`"`))
	since := w.beforeFailures.Truncate(time.Second)
	wide.do(t, chromedp.Evaluate[chromedp.Void](`(d => { const p = n => String(n).padStart(2, "0"); `+
		`document.getElementById("recover-since").value = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + `+
		`"T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()); })(new Date(`+
		jsString(since.UTC().Format(time.RFC3339))+`))`),
		chromedp.Click(`//input[@name="include"][@value="missing"]`))
	wide.clickFresh(t, `//button[normalize-space()="Start recovery"]`)
	wide.wait(t, `//p[@class="notice"][normalize-space()="Recovery started."]`)
	wide.wait(t, `//p[@class="recovery-state"][@data-status="done"]`)
	hash := eval[string](t, wide, `location.hash`)
	var r struct {
		Status            string
		Since             time.Time
		Include           []string
		Requeued, Created int
	}
	w.svc.call(t, w.key, http.MethodGet, "/api/v1/webhooks/"+w.endpoint+"/recoveries/"+hash[strings.LastIndex(hash, "/")+1:], nil).
		want(t, http.StatusOK, &r)
	shown := eval[[]int](t, wide, `["requeued", "created"].map(k => Number(document.querySelector("[data-count=" + k + "]").textContent))`)
	if r.Status != "done" || !r.Since.Equal(since) || !sameSet(r.Include, []string{"failed", "missing"}) || r.Requeued != 1 || r.Created != 1 {
		t.Errorf("the recovery is %+v, want done since %s, failed and missing, 1 requeued and 1 created", r, since)
	}
	if !slices.Equal(shown, []int{r.Requeued, r.Created}) {
		t.Errorf("the page shows requeued, created = %v; the API %d, %d", shown, r.Requeued, r.Created)
	}
	wide.screenshot(t, "recovery-1280")
	w.svc.waitDelivery(t, w.key, w.endpoint, w.completed, registry.DeliverySucceeded)
	w.svc.waitDelivery(t, w.key, w.endpoint, w.started, registry.DeliverySucceeded)
	if a, b := w.received(w.completed), w.received(w.started); a != 1 || b != 1 {
		t.Errorf("the receiver took the recovered scan.completed %d times and scan.started %d times, want once each", a, b)
	}
	wide.fresh(t, chromedp.Evaluate[chromedp.Void](`location.hash = "#/events/`+w.started+`"`))
	wide.wait(t, `//tr[td[@data-label="Endpoint"]//a[normalize-space()="`+w.rc.URL+`"]]/td[@data-label="Status"]//span[normalize-space()="succeeded"]`)
}
