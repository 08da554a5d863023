package portal_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cert-ix/webhookd/api/portal"
)

// TestPageLoadsOnlyItsOwnFiles: every script and style sheet the page names is an embedded file
// of this origin, and there is no inline script, inline style or event-handler attribute.
func TestPageLoadsOnlyItsOwnFiles(t *testing.T) {
	page := string(portal.Page().Body)
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("the page names %d files, want its script and style sheet", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "#/") { // the page's own routes
			continue
		}
		name, ok := strings.CutPrefix(ref, "/portal/assets/")
		if !ok {
			t.Errorf("the page loads %q, not one of its own assets", ref)
			continue
		}
		if _, found := portal.Asset(name); !found {
			t.Errorf("the page loads %q, which is not embedded", ref)
		}
	}
	for _, bad := range []string{"<script>", "<style", " style=", " onload=", " onclick=", " onerror="} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q: inline code would need a weaker Content-Security-Policy", bad)
		}
	}
}

// TestScriptsOnlyMakeText: no script uses an HTML-parsing sink or eval, and none names another
// origin. (Trusted Types in the policy would refuse the sinks at run time as well.)
func TestScriptsOnlyMakeText(t *testing.T) {
	sinks := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
		"setTimeout(\"", "createContextualFragment", "DOMParser"}
	urls := regexp.MustCompile(`https?://[^\s"'\x60]+`)
	allowed := map[string]bool{
		"https://receiver.example.com/hooks": true, // the URL field's placeholder text
		"http://www.w3.org/2000/svg":         true, // the SVG namespace: a name, never fetched
	}
	scripts := 0
	for _, name := range portal.Assets() {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		scripts++
		f, ok := portal.Asset(name)
		if !ok {
			t.Fatalf("%s is not embedded", name)
		}
		src := string(f.Body)
		for _, s := range sinks {
			if strings.Contains(src, s) {
				t.Errorf("%s uses %s", name, s)
			}
		}
		for _, u := range urls.FindAllString(src, -1) {
			if !allowed[u] {
				t.Errorf("%s names another origin: %s", name, u)
			}
		}
		if f.ContentType != "text/javascript; charset=utf-8" {
			t.Errorf("%s is served as %q", name, f.ContentType)
		}
	}
	if scripts < 2 {
		t.Errorf("only %d scripts are embedded", scripts)
	}
}

// TestModulesFormOneGraph: every module a script imports is embedded, and every embedded
// script is reached from the entry point, so the page loads exactly the files Assets lists.
func TestModulesFormOneGraph(t *testing.T) {
	imports := regexp.MustCompile(`(?m)^import [^;]*? from "\./([a-z]+\.js)";$`)
	reached := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if reached[name] {
			return
		}
		reached[name] = true
		f, ok := portal.Asset(name)
		if !ok {
			t.Errorf("%s is imported but not embedded", name)
			return
		}
		for _, m := range imports.FindAllStringSubmatch(string(f.Body), -1) {
			visit("js/" + m[1])
		}
	}
	visit("js/app.js")
	for _, name := range portal.Assets() {
		if strings.HasSuffix(name, ".js") && !reached[name] {
			t.Errorf("%s is embedded but no module imports it", name)
		}
	}
	if len(reached) < 10 {
		t.Errorf("the entry point reaches only %d modules: %v", len(reached), reached)
	}
}
