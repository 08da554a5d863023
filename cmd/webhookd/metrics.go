package main

import (
	"context"
	"log/slog"
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
)

// metrics holds webhookd's Prometheus collectors. It implements delivery.Observer and the
// API's request observer.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	attempts  *prometheus.CounterVec
	attemptD  prometheus.Histogram
	disabled  *prometheus.CounterVec
	deferred  prometheus.Counter
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
		deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "webhookd_deliveries_deferred_total",
			Help: "Deliveries put off a few seconds, without an attempt, because their endpoint was at its in-flight cap."}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.attempts, m.attemptD, m.disabled, m.deferred,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeRequest(method, route string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(d.Seconds())
}

func (m *metrics) Attempt(outcome string, d time.Duration) {
	m.attempts.WithLabelValues(outcome).Inc()
	m.attemptD.Observe(d.Seconds())
}

func (m *metrics) Disabled(reason string) { m.disabled.WithLabelValues(reason).Inc() }

func (m *metrics) Deferred() { m.deferred.Inc() }

// stateCacheTTL bounds how often a scrape reads the queue and registry state.
const stateCacheTTL = 5 * time.Second

// stateCollector reports queue depth by state (asynq's Inspector) and the registry's disabled
// endpoints and held deliveries, read at most every stateCacheTTL however often Prometheus scrapes.
type stateCollector struct {
	insp  *asynq.Inspector
	store *registry.Store
	log   *slog.Logger

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

func newStateCollector(insp *asynq.Inspector, store *registry.Store, log *slog.Logger) *stateCollector {
	return &stateCollector{insp: insp, store: store, log: log,
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
	queues := map[string]*asynq.QueueInfo{}
	if info, err := c.insp.GetQueueInfo(delivery.Queue); err == nil {
		queues[delivery.Queue] = info
	}
	c.queues = queues
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		c.log.Warn("metrics: reading registry stats failed", "error", err.Error())
		return
	}
	c.stats = st
}

// mount adds GET /metrics to the API.
func (m *metrics) mount(e *echo.Echo) {
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})))
}
