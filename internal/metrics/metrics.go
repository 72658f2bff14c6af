// Package metrics holds merchantagg's Prometheus metrics: HTTP latency by route, refresh job
// durations, failures and retries, and pipeline gauges read from the analytics database at
// scrape time, so every process (serve, worker) reports the same lag.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one process's registry.
type Metrics struct {
	reg *prometheus.Registry
	// HTTPDuration: seconds per request by route pattern (not path: ids would explode the
	// label set), method and status code.
	HTTPDuration *prometheus.HistogramVec
	// JobDuration: seconds per River job attempt by kind and outcome (ok, error).
	JobDuration *prometheus.HistogramVec
	// JobFailures counts failed attempts by kind; JobRetries counts attempts after the first.
	JobFailures *prometheus.CounterVec
	JobRetries  *prometheus.CounterVec
}

// New registers the metrics and Go's process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "merchantagg_http_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "code"}),
		JobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "merchantagg_job_duration_seconds",
			Help:    "River job attempt duration by kind and outcome.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"kind", "outcome"}),
		JobFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "merchantagg_job_failures_total",
			Help: "River job attempts that returned an error, by kind.",
		}, []string{"kind"}),
		JobRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "merchantagg_job_retries_total",
			Help: "River job attempts after the first, by kind.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.HTTPDuration, m.JobDuration, m.JobFailures, m.JobRetries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// WatchPipeline adds gauges read from refresh.pipeline_status() on every scrape.
func (m *Metrics) WatchPipeline(pool *pgxpool.Pool, log *slog.Logger) {
	m.reg.MustRegister(&pipeline{pool: pool, log: log})
}

var (
	descWatermarkLag = prometheus.NewDesc("merchantagg_refresh_watermark_lag_seconds",
		"How far the change scan's source watermark is behind now.", nil, nil)
	descDirtyDays = prometheus.NewDesc("merchantagg_refresh_dirty_days",
		"Merchant days waiting for a refresh: dirty days and the days of changed orders.", nil, nil)
	descDirtyMerchants = prometheus.NewDesc("merchantagg_refresh_dirty_merchants",
		"Merchants with days or changed orders waiting for a refresh.", nil, nil)
	descParked = prometheus.NewDesc("merchantagg_refresh_parked_merchants",
		"Merchants whose latest refresh job was discarded after its last attempt: they wait for an operator.", nil, nil)
	descOldestRefresh = prometheus.NewDesc("merchantagg_refresh_oldest_seconds",
		"Age of the least recently refreshed merchant's last refresh.", nil, nil)
	descDrift = prometheus.NewDesc("merchantagg_reconcile_drifted_months",
		"Merchant months the last reconciliation found different from the source.", nil, nil)
)

type pipeline struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

func (p *pipeline) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWatermarkLag, descDirtyDays, descDirtyMerchants, descParked, descOldestRefresh, descDrift} {
		ch <- d
	}
}

// Collect reads the status; on error it reports nothing (absent gauges alert, stale ones lie).
func (p *pipeline) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var lag, oldest *float64
	var days, merchants, parked int64
	var drift *int64
	err := p.pool.QueryRow(ctx, "SELECT * FROM refresh.pipeline_status()").Scan(&lag, &days, &merchants, &parked, &oldest, &drift)
	if err != nil {
		p.log.Warn("pipeline metrics", "err", err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	if lag != nil {
		gauge(descWatermarkLag, *lag)
	}
	gauge(descDirtyDays, float64(days))
	gauge(descDirtyMerchants, float64(merchants))
	gauge(descParked, float64(parked))
	if oldest != nil {
		gauge(descOldestRefresh, *oldest)
	}
	if drift != nil {
		gauge(descDrift, float64(*drift))
	}
}
