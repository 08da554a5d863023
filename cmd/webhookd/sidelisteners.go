package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's profiles on their own listener, never on the API's, until ctx ends.
// Off unless WEBHOOKD_PPROF_ADDR is set; bind it to loopback or a private interface.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	bound, err := serveSide(ctx, addr, mux)
	if err != nil {
		return err
	}
	log.Warn("pprof profiles are served; do not expose this address", "pprofAddr", bound)
	return nil
}

// serveMetrics serves GET /metrics (and /healthz) on their own listener until ctx ends: how a
// --role worker process, which has no API, is scraped. Off unless WEBHOOKD_METRICS_ADDR is set.
func serveMetrics(ctx context.Context, addr string, m *metrics, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	bound, err := serveSide(ctx, addr, mux)
	if err != nil {
		return err
	}
	log.Info("metrics served", "metricsAddr", bound)
	return nil
}

// serveSide serves h on addr, beside the API, until ctx ends; it returns the bound address.
func serveSide(ctx context.Context, addr string, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() { _ = srv.Serve(l) }()
	return l.Addr().String(), nil
}
