// Package portal is the tenant portal's front end: one static HTML page, its style sheet and
// its JavaScript modules, embedded in the binary. The page calls the JSON API of the same origin
// with a portal session's token; the api package serves these files at /portal.
package portal

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
)

//go:embed assets
var files embed.FS

// File is one embedded file, ready to serve.
type File struct {
	Name        string
	Body        []byte
	ContentType string
	// ETag is a strong validator of Body (its SHA-256), so a browser revalidates cheaply.
	ETag string
}

// ContentSecurityPolicy is sent with every portal file. Scripts, styles and requests come from
// the page's own origin only (no inline code, no CDN, nothing leaves the origin); no form
// submits anywhere (the page sends JSON with fetch); no other site may frame the page; and
// Trusted Types forbid every HTML-parsing sink (innerHTML and the like), so tenant data can only
// ever become text.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// SetSecurityHeaders adds the portal's security headers to h.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

var catalogue = load()

// load reads every embedded file once at start.
func load() map[string]File {
	out := map[string]File{}
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "assets/")
		out[name] = File{Name: name, Body: body, ContentType: contentType(name),
			ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic("portal: reading embedded files: " + err.Error()) // only a broken build gets here
	}
	return out
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

// Page returns the portal's HTML page.
func Page() File { return catalogue["index.html"] }

// Asset returns the file at name (a path below /portal/assets/, e.g. "js/app.js"); the HTML
// page itself is only served as the page.
func Asset(name string) (File, bool) {
	if name == "index.html" {
		return File{}, false
	}
	f, ok := catalogue[name]
	return f, ok
}

// Assets returns the names of every file the page loads (its style sheet and every script
// module, as Asset takes them), sorted.
func Assets() []string {
	names := slices.Collect(maps.Keys(catalogue))
	names = slices.DeleteFunc(names, func(n string) bool { return n == "index.html" })
	slices.Sort(names)
	return names
}
