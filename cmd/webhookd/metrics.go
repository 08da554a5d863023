package main

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cert-ix/webhookd/delivery"
	"github.com/cert-ix/webhookd/registry"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// metrics holds webhookd's Prometheus collectors. It implements delivery.Observer and the
// API's request observer.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	attempts   *prometheus.CounterVec
	attemptD   prometheus.Histogram
	disabled   *prometheus.CounterVec
	recovered  *prometheus.CounterVec
	recoveries prometheus.Counter
	// conc is the effective concurrency of the endpoints this worker saw below their ceiling,
	// at most maxConcSeries of them (throttledSeries): the label set stays bounded.
	conc      *prometheus.GaugeVec
	concMu    sync.Mutex
	concShown map[string]bool
	queueSize *prometheus.GaugeVec
}

var _ delivery.Observer = (*metrics)(nil)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhookd_http_requests_total",
			Help: "API requests by method, route and status."}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "webhookd_http_request_duration_seconds",
			Help: "API request latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"method", "route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhookd_delivery_attempts_total",
			Help: "Delivery attempts by outcome (success, failure, gone, throttled)."}, []string{"outcome"}),
		attemptD: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "webhookd_delivery_attempt_duration_seconds",
			Help: "Duration of one delivery attempt.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhookd_endpoints_disabled_total",
			Help: "Endpoints disabled automatically, by reason."}, []string{"reason"}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhookd_recovery_deliveries_total",
			Help: "Deliveries queued by finished recoveries: requeued (failed ones) or created (missing ones)."},
			[]string{"kind"}),
	}
	m.recoveries = prometheus.NewCounter(prometheus.CounterOpts{Name: "webhookd_recoveries_total",
		Help: "Recoveries finished."})
	m.conc = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "webhookd_endpoint_effective_concurrency",
		Help: "Effective concurrency of endpoints held below their ceiling by 429/503 answers (at most 100 series)."},
		[]string{"endpoint"})
	m.concShown = map[string]bool{}
	m.zeroSeries()
	m.reg.MustRegister(m.requests, m.latency, m.attempts, m.attemptD, m.disabled, m.recovered, m.recoveries, m.conc,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// zeroSeries starts every counter series whose labels are known in advance at 0, so that a
// rate or increase over it (an alert on disabled endpoints) works from the first scrape.
func (m *metrics) zeroSeries() {
	for _, o := range []registry.AttemptOutcome{registry.OutcomeSuccess, registry.OutcomeFailure, registry.OutcomeGone,
		registry.OutcomeThrottled} {
		m.attempts.WithLabelValues(string(o))
	}
	for _, r := range []string{registry.ReasonConsecutiveFailures, registry.ReasonGone, registry.ReasonProbationFailed} {
		m.disabled.WithLabelValues(r)
	}
	m.recovered.WithLabelValues("requeued")
	m.recovered.WithLabelValues("created")
}

// requestMethods are the methods webhookd_http_requests_total names; any other is "other",
// so that a client cannot add series by making methods up.
var requestMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions}

func (m *metrics) observeRequest(method, route string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	if !slices.Contains(requestMethods, method) {
		method = "other"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(d.Seconds())
}

func (m *metrics) Attempt(outcome string, d time.Duration) {
	m.attempts.WithLabelValues(outcome).Inc()
	m.attemptD.Observe(d.Seconds())
}

func (m *metrics) Disabled(reason string) { m.disabled.WithLabelValues(reason).Inc() }

// maxConcSeries bounds webhookd_endpoint_effective_concurrency's series: an endpoint is shown
// while it is below its ceiling, and dropped when it is back.
const maxConcSeries = 100

func (m *metrics) Concurrency(endpointID string, effective, ceiling int) {
	m.concMu.Lock()
	defer m.concMu.Unlock()
	switch {
	case effective >= ceiling:
		if m.concShown[endpointID] {
			delete(m.concShown, endpointID)
			m.conc.DeleteLabelValues(endpointID)
		}
	case m.concShown[endpointID] || len(m.concShown) < maxConcSeries:
		m.concShown[endpointID] = true
		m.conc.WithLabelValues(endpointID).Set(float64(effective))
	}
}

func (m *metrics) Recovered(requeued, created int) {
	m.recoveries.Inc()
	m.recovered.WithLabelValues("requeued").Add(float64(requeued))
	m.recovered.WithLabelValues("created").Add(float64(created))
}

// stateCacheTTL bounds how often a scrape reads the queue and registry state.
const stateCacheTTL = 5 * time.Second

// stateCollector reports queue depth by state and shard (asynq's Inspector) and the registry's disabled
// endpoints and held deliveries, read at most every stateCacheTTL however often Prometheus scrapes.
type stateCollector struct {
	rdb    redis.UniversalClient
	shards []string // the configured shards, reported (at 0) before asynq knows them
	store  *registry.Store
	log    *slog.Logger

	mu      sync.Mutex
	at      time.Time
	queues  map[string]*asynq.QueueInfo
	stats   registry.Stats
	queueD  *prometheus.Desc
	disD    *prometheus.Desc
	heldD   *prometheus.Desc
	endpD   *prometheus.Desc
	tenantD *prometheus.Desc
}

func newStateCollector(rdb redis.UniversalClient, shards int, store *registry.Store, log *slog.Logger) *stateCollector {
	return &stateCollector{rdb: rdb, shards: delivery.NewShards(shards).Names(), store: store, log: log,
		queueD:  prometheus.NewDesc("webhookd_queue_tasks", "Tasks in the queue by state.", []string{"queue", "state"}, nil),
		disD:    prometheus.NewDesc("webhookd_endpoints_disabled", "Endpoints currently disabled.", nil, nil),
		heldD:   prometheus.NewDesc("webhookd_deliveries_held", "Deliveries held for disabled endpoints.", nil, nil),
		endpD:   prometheus.NewDesc("webhookd_endpoints", "Registered endpoints.", nil, nil),
		tenantD: prometheus.NewDesc("webhookd_tenants", "Tenants.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queueD
	ch <- c.disD
	ch <- c.heldD
	ch <- c.endpD
	ch <- c.tenantD
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > stateCacheTTL {
		c.refresh()
	}
	for q, info := range c.queues {
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
			ch <- prometheus.MustNewConstMetric(c.queueD, prometheus.GaugeValue, float64(n), q, state)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.disD, prometheus.GaugeValue, float64(c.stats.DisabledEndpoints))
	ch <- prometheus.MustNewConstMetric(c.heldD, prometheus.GaugeValue, float64(c.stats.HeldDeliveries))
	ch <- prometheus.MustNewConstMetric(c.endpD, prometheus.GaugeValue, float64(c.stats.Endpoints))
	ch <- prometheus.MustNewConstMetric(c.tenantD, prometheus.GaugeValue, float64(c.stats.Tenants))
}

func (c *stateCollector) refresh() {
	c.at = time.Now()
	if queues, err := delivery.QueueInfos(c.rdb); err == nil {
		for _, q := range c.shards {
			if queues[q] == nil {
				queues[q] = &asynq.QueueInfo{Queue: q}
			}
		}
		c.queues = queues
	} else {
		c.log.Warn("metrics: reading the queues failed", "error", err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		c.log.Warn("metrics: reading registry stats failed", "error", err.Error())
		return
	}
	c.stats = st
}

// mount adds /metrics to the API, for GET and HEAD.
func (m *metrics) mount(e *echo.Echo) {
	e.Match([]string{http.MethodGet, http.MethodHead}, "/metrics", echo.WrapHandler(m.handler()))
}

// handler serves the registry in Prometheus's text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
