package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/config"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/httpapi"
	"github.com/merchantagg/merchantagg/internal/jobs"
	"github.com/merchantagg/merchantagg/internal/metrics"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/schema"
	"github.com/merchantagg/merchantagg/internal/stats"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	var withWorker bool
	if err := flags("serve", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&withWorker, "with-worker", false, "also run the River worker and the change scan")
	}); err != nil {
		return err
	}
	cfg, err := load("ANALYTICS_DATABASE_URL", "JWT_SECRET")
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	verifier, err := newVerifier(cfg)
	if err != nil {
		return err
	}
	// The port first: a busy one fails before anything starts.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()

	// The primary, as the pipeline's role: River (jobs, River UI), backfills, pipeline gauges.
	p, err := openPipeline(ctx, cfg, log, withWorker)
	if err != nil {
		return err
	}
	defer p.close()
	readURL := cfg.AnalyticsDatabaseURL
	if cfg.ReadDatabaseURL != "" {
		readURL = cfg.ReadDatabaseURL
	}
	apiPool, err := db.OpenAPI(ctx, readURL)
	if err != nil {
		return fmt.Errorf("analytics database: %w", err)
	}
	defer apiPool.Close()
	reader, err := stats.NewReader(apiPool)
	if err != nil {
		return err
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(p.client, nil), Logger: log, Prefix: "/riverui",
	})
	if err != nil {
		return fmt.Errorf("river ui: %w", err)
	}
	if err := ui.Start(ctx); err != nil {
		return fmt.Errorf("start river ui: %w", err)
	}

	router, err := httpapi.NewRouter(httpapi.Options{
		Reader: reader, Verifier: verifier, Ready: apiPool.Ping, Logger: log,
		Backfill: jobs.Backfiller{Client: p.client, Refresher: p.refresher}, RiverUI: ui, Metrics: p.metrics,
		Limits: httpapi.Limits{
			Rate: cfg.RateLimit, Burst: cfg.RateBurst, AdminRate: cfg.AdminRateLimit, AdminBurst: cfg.AdminRateBurst,
			// Four requests per connection: a request holds a connection only for its reads,
			// not while its answer is encoded and sent, so more are in flight than read at once.
			InFlight: 4 * int(apiPool.Config().MaxConns), AdmissionWait: cfg.AdmissionWait,
		},
	})
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "with_worker", withWorker, "read_replica", cfg.ReadDatabaseURL != "")
	return serveOn(ctx, ln, router, log)
}

func workerCmd(ctx context.Context, args []string, stderr io.Writer) error {
	if err := flags("worker", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	cfg, err := load("ANALYTICS_DATABASE_URL")
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	var ln net.Listener
	if cfg.MetricsAddr != "" {
		if ln, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.MetricsAddr, err)
		}
		defer ln.Close()
	}
	p, err := openPipeline(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer p.close()
	log.Info("worker started", "refresh_interval", cfg.RefreshInterval.String(),
		"reconcile_interval", cfg.ReconcileInterval.String(), "concurrency", cfg.WorkerConcurrency)
	if ln == nil {
		<-ctx.Done()
		log.Info("shutting down")
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", p.metrics.Handler())
	return serveOn(ctx, ln, mux, log)
}

// pipeline is a process's connection to the analytics primary as the pipeline's role: the
// River client, the refresher and the metrics that read the pipeline's state.
type pipeline struct {
	pool      *pgxpool.Pool
	client    *river.Client[pgx.Tx]
	refresher *refresh.Refresher
	metrics   *metrics.Metrics
	stop      func()
}

// openPipeline connects it; with work, River also works jobs and runs the periodic ones,
// else it only inserts jobs and serves River UI.
func openPipeline(ctx context.Context, cfg config.Config, log *slog.Logger, work bool) (*pipeline, error) {
	pool, err := db.Open(ctx, cfg.AnalyticsDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("analytics database: %w", err)
	}
	if err := schema.Check(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	p := &pipeline{pool: pool, refresher: refresh.New(pool), metrics: metrics.New(), stop: func() {}}
	p.refresher.StatementTimeout = cfg.RefreshStatementTimeout
	p.metrics.WatchPipeline(pool, log)
	c := jobs.Config{Pool: pool, MaxAttempts: cfg.RefreshMaxAttempts, Metrics: p.metrics, Logger: log}
	if work {
		c.Refresher, c.RefreshInterval, c.ReconcileInterval = p.refresher, cfg.RefreshInterval, cfg.ReconcileInterval
		c.Workers, c.JobTimeout = cfg.WorkerConcurrency, cfg.RefreshJobTimeout
	}
	if p.client, err = jobs.NewClient(c); err != nil {
		pool.Close()
		return nil, err
	}
	if work {
		// River's own context must outlive the signal so Stop can finish running jobs.
		if err := p.client.Start(context.WithoutCancel(ctx)); err != nil {
			pool.Close()
			return nil, fmt.Errorf("start river: %w", err)
		}
		p.stop = func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.client.Stop(stopCtx); err != nil {
				log.Warn("river stop", "err", err)
			}
		}
	}
	return p, nil
}

// close stops River, letting running jobs finish (a refresh is one transaction per unit, so
// one cut short is simply retried), and closes the pool.
func (p *pipeline) close() {
	p.stop()
	p.pool.Close()
}

// serveOn serves h on ln until ctx ends, then shuts down gracefully.
func serveOn(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

func newVerifier(cfg config.Config) (*auth.Verifier, error) {
	if cfg.JWTPublicKeyFile == "" {
		return auth.NewHMAC([]byte(cfg.JWTSecret)), nil
	}
	pem, err := os.ReadFile(cfg.JWTPublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("JWT_PUBLIC_KEY_FILE: %w", err)
	}
	return auth.NewPublicKey(pem)
}
