//go:build browser

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cert-ix/webhookd/api"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// newBrowser starts Debian's headless Chromium with a fresh profile and returns its context.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium): %v", err)
	}
	actx, cancel := chromedp.NewExecAllocator(t.Context(), chromedp.ExecPath(bin), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	t.Cleanup(cancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// tab is one browser tab and what the test watches in it: every request it makes, every
// dialog it opens (closed at once) and every script error or policy violation it reports.
type tab struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []*network.Request
	dialogs  []string
	problems []string
}

// newTab opens a tab of the given viewport size.
func newTab(t *testing.T, browser context.Context, width, height int64) *tab {
	t.Helper()
	tb := &tab{}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	// The first action opens the tab, which lives as long as that action's context: it must be
	// the tab's own, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, ev.Message)
			tb.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return tb
}

// listen runs in the tab's event loop: it only records.
func (tb *tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request)
	case *runtime.EventExceptionThrown:
		tb.problems = append(tb.problems, "exception: "+ev.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			tb.problems = append(tb.problems, fmt.Sprintf("console.%s", ev.Type))
		}
	case *log.EventEntryAdded:
		// The network source reports the 401s and 404s the test causes on purpose.
		if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
			tb.problems = append(tb.problems, fmt.Sprintf("%s: %s", ev.Entry.Source, ev.Entry.Text))
		}
	}
}

// do runs actions, failing the test after patience.
func (tb *tab) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v\nmain shows:\n%s", err, tb.mainText(t))
	}
}

// wait waits until an element matching the XPath expression is visible.
func (tb *tab) wait(t *testing.T, xpath string) {
	t.Helper()
	tb.do(t, chromedp.WaitVisible(xpath))
}

// click clicks the first visible element matching the XPath expression.
func (tb *tab) click(t *testing.T, xpath string) {
	t.Helper()
	tb.do(t, chromedp.Click(xpath, chromedp.NodeVisible))
}

// fresh runs actions that make the page render again and waits for the new page: main's
// data-render counter has grown and main is no longer busy. Waiting for content alone could
// find it on the page that was there before.
func (tb *tab) fresh(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	n := eval[int](t, tb, `Number(document.getElementById("main").dataset.render || 0)`)
	tb.do(t, actions...)
	tb.wait(t, fmt.Sprintf(`//main[not(@aria-busy)][number(@data-render) > %d]`, n))
}

// clickFresh clicks and waits for the page the click leads to.
func (tb *tab) clickFresh(t *testing.T, xpath string) {
	t.Helper()
	tb.fresh(t, chromedp.Click(xpath, chromedp.NodeVisible))
}

// eval evaluates a JavaScript expression and returns its JSON result as T.
func eval[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// mainText is what the page's main region shows, for assertions and failure messages.
func (tb *tab) mainText(t *testing.T) string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// screenshot saves the viewport as testdata/portal/name.png (CI keeps them as artifacts).
func (tb *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	tb.savePNG(t, name, chromedp.CaptureScreenshot())
}

// screenshotOf saves only the element matching the XPath expression, as testdata/portal/name.png.
func (tb *tab) screenshotOf(t *testing.T, name, xpath string) {
	t.Helper()
	tb.savePNG(t, name, chromedp.Screenshot(xpath, chromedp.NodeVisible))
}

func (tb *tab) savePNG(t *testing.T, name string, shoot chromedp.Action[[]byte]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, patience)
	defer cancel()
	png, err := chromedp.Run(ctx, shoot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "testdata", "portal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkClean fails on any dialog, script error or policy violation, and on any request that
// left origin or carried the token in its URL. (The proxy checks what actually arrives:
// no Referer.)
func (tb *tab) checkClean(t *testing.T, origin string) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.dialogs) > 0 {
		t.Errorf("the page opened dialogs: %q", tb.dialogs)
	}
	if len(tb.problems) > 0 {
		t.Errorf("the page reported: %q", tb.problems)
	}
	for _, r := range tb.requests {
		// Chromium draws the date field's calendar icon from a data: URL of its own style
		// sheet: nothing is fetched. (The page's own data: URLs would break its policy and be
		// reported as problems above.)
		if strings.HasPrefix(r.URL, "data:") {
			continue
		}
		if !strings.HasPrefix(r.URL, origin+"/") {
			t.Errorf("the page requested %s, outside its origin %s", r.URL, origin)
		}
		if strings.Contains(r.URL, "cix_ps_") {
			t.Errorf("a request line holds the portal token: %s", r.URL)
		}
	}
}

// apiProxy stands between the browser and webhookd. It checks every answer the page gets from
// the API (and the page itself) against the OpenAPI document, and that no request arrives with
// a Referer.
type apiProxy struct {
	URL      string
	router   routers.Router
	mu       sync.Mutex
	checked  int
	problems []string
}

func newAPIProxy(t *testing.T, target string) *apiProxy {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = nil
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	p := &apiProxy{}
	if p.router, err = gorillamux.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = p.check
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ref := r.Header.Get("Referer"); ref != "" {
			p.mu.Lock()
			p.problems = append(p.problems, fmt.Sprintf("%s %s arrived with Referer %q", r.Method, r.URL.Path, ref))
			p.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *apiProxy) check(res *http.Response) error {
	req := res.Request
	if !strings.HasPrefix(req.URL.Path, "/api/") && req.URL.Path != "/portal" {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	problem := ""
	route, params, err := p.router.FindRoute(req)
	if err != nil {
		problem = fmt.Sprintf("%s %s → %d: no such operation", req.Method, req.URL.Path, res.StatusCode)
	} else {
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(body)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
			problem = fmt.Sprintf("%s %s → %d: %v", req.Method, req.URL.Path, res.StatusCode, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checked++
	if problem != "" {
		p.problems = append(p.problems, problem)
	}
	return nil
}

// verify fails the test unless every answer the proxy saw matched the document.
func (p *apiProxy) verify(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.checked < 20 {
		t.Errorf("the proxy checked only %d answers", p.checked)
	}
	for _, s := range p.problems {
		t.Errorf("openapi: %s", s)
	}
	t.Logf("%d answers the page got were checked against the OpenAPI document", p.checked)
}

// session makes a portal link through the proxy (so it points at the proxy) with key.
func (p *apiProxy) session(t *testing.T, key string, seconds int) string {
	t.Helper()
	body := strings.NewReader(fmt.Sprintf(`{"expiresInSeconds": %d}`, seconds))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL+"/api/v1/portal/sessions", body)
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := apiClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var env struct {
		Data struct {
			URL string `json:"url"`
		} `json:"data"`
	}
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated || json.Unmarshal(b, &env) != nil || !strings.HasPrefix(env.Data.URL, p.URL+"/portal#cix_ps_") {
		t.Fatalf("POST /api/v1/portal/sessions = %d %s", res.StatusCode, b)
	}
	return env.Data.URL
}
