package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cert-ix/webhookd/signing"
)

// `webhookd listen` is a local HTTPS receiver for development: it presents a certificate of the
// local CA (which serve on the embedded default trusts), verifies each delivery's signature
// with the repository's signing package, and prints one line per delivery.
//
// The secret of an endpoint exists only once the endpoint is registered, and registering needs
// a receiver that answers; so besides --secret, listen reads the secrets listed in a file of
// the per-user directory (one per line) on every delivery. The README's quickstart appends the
// secret of the endpoint it registers there.

const (
	listenEnvFile     = "listen.env"     // HOOK_URL, SECRETS_FILE and CA_FILE for shell lines
	listenSecretsFile = "listen-secrets" // one whsec_ secret per line
	listenPath        = "/webhook"
	maxListenBody     = 1 << 20
)

// listenConfig is what `webhookd listen` reads from flags over WEBHOOKD_* variables.
type listenConfig struct {
	addr, secret, home string
	verbose            bool
}

func parseListen(args []string, getenv func(string) string) (*listenConfig, error) {
	c := &listenConfig{}
	fs := flag.NewFlagSet("webhookd listen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	e := &envFlag{fs: fs, getenv: getenv}
	e.str(&c.addr, "addr", "WEBHOOKD_LISTEN_ADDR", "127.0.0.1:9443", "address to receive deliveries on")
	e.str(&c.secret, "secret", "WEBHOOKD_LISTEN_SECRET", "", "endpoint secret (whsec_...) that signatures are verified with")
	e.str(&c.home, "home", "WEBHOOKD_HOME", "", "directory of the local CA and listen's files (default $XDG_CONFIG_HOME/webhookd or ~/.config/webhookd)")
	fs.BoolVar(&c.verbose, "verbose", false, "print each delivery's body too")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			b.WriteString("usage: webhookd listen [flags]\n\n")
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return nil, helpRequested{b.String()}
		}
		return nil, usageError{err.Error() + " (webhookd listen --help lists the flags)"}
	}
	if c.secret != "" {
		if _, err := signing.ParseSecret(c.secret); err != nil {
			return nil, usageError{"--secret is not a whsec_ secret"}
		}
	}
	home, err := webhookdHome(c.home, getenv)
	c.home = home
	return c, err
}

// listen runs the receiver until ctx ends. ready, if set, is called with its URL once it listens.
func listen(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, ready func(url string)) error {
	c, err := parseListen(args, getenv)
	var help helpRequested
	if errors.As(err, &help) {
		fmt.Fprint(stdout, help.text)
		return nil
	}
	if err != nil {
		return err
	}
	ca, err := loadOrMakeCA(c.home)
	if err != nil {
		return err
	}
	cert, err := listenCertificate(c.home, ca)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	url := "https://" + loopbackAddr(l.Addr()) + listenPath
	r := &receiverLog{out: stdout, verbose: c.verbose, secret: c.secret, secretsFile: filepath.Join(c.home, listenSecretsFile)}
	if err := r.announce(c.home, url, ca.path); err != nil {
		l.Close()
		return err
	}
	if ready != nil {
		ready(url)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// loopbackAddr is a's host:port for a URL, with 127.0.0.1 for an unspecified host.
func loopbackAddr(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// receiverLog verifies and prints deliveries.
type receiverLog struct {
	out         io.Writer
	verbose     bool
	secret      string
	secretsFile string
	mu          sync.Mutex
}

// announce prints where to send deliveries and how they are verified, and writes listen.env
// for shell lines.
func (r *receiverLog) announce(home, url, caFile string) error {
	env := fmt.Sprintf("HOOK_URL=%s\nSECRETS_FILE=%s\nCA_FILE=%s\n", url, shellQuote(r.secretsFile), shellQuote(caFile))
	if err := os.WriteFile(filepath.Join(home, listenEnvFile), []byte(env), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "webhookd listen: register this URL: %s\n", url)
	fmt.Fprintf(r.out, "webhookd listen: its certificate is signed by the local CA %s (serve on the embedded default trusts it)\n", caFile)
	fmt.Fprintf(r.out, "webhookd listen: signatures are verified with --secret and the secrets in %s (one per line, read on every delivery)\n", r.secretsFile)
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ServeHTTP answers the reachability probe (any method but POST) with 200 and each POST with
// 200 when its signature verifies, 401 otherwise, so the sender retries a delivery it could
// not prove; either way it prints one line.
func (r *receiverLog) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxListenBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	verdict := r.verify(req.Header, body)
	r.print(req.Header.Get(signing.HeaderID), body, verdict)
	if verdict != "verified" {
		http.Error(w, verdict, http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// verify returns "verified" when any known secret verifies the delivery, else why not.
func (r *receiverLog) verify(h http.Header, body []byte) string {
	secrets := r.secrets()
	if len(secrets) == 0 {
		return "NOT verified: no secret (pass --secret or add it to " + r.secretsFile + ")"
	}
	var last error
	for _, s := range secrets {
		if last = signing.Verify(s, h, body, time.Now()); last == nil {
			return "verified"
		}
	}
	return "NOT verified: " + strings.TrimPrefix(last.Error(), "signing: ")
}

// secrets are --secret and the lines of the secrets file, read now so that a secret added
// while listen runs counts from the next delivery on.
func (r *receiverLog) secrets() []string {
	var out []string
	if r.secret != "" {
		out = append(out, r.secret)
	}
	f, err := os.Open(r.secretsFile)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, signing.SecretPrefix) {
			out = append(out, line)
		}
	}
	return out
}

func (r *receiverLog) print(id string, body []byte, verdict string) {
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(body, &ev)
	if ev.Type == "" {
		ev.Type = "(no type)"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.out, "%s  %s  %s  %s\n", time.Now().UTC().Format(time.RFC3339), ev.Type, id, verdict)
	if r.verbose {
		fmt.Fprintf(r.out, "%s\n", body)
	}
}
