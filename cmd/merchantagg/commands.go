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

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/config"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/httpapi"
	"github.com/merchantagg/merchantagg/internal/jobs"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/schema"
	"github.com/merchantagg/merchantagg/internal/seed"
	"github.com/merchantagg/merchantagg/internal/source"
	"github.com/merchantagg/merchantagg/internal/stats"
)

// dateFlag is a YYYY-MM-DD flag.
type dateFlag struct{ t time.Time }

func (d *dateFlag) String() string {
	if d.t.IsZero() {
		return ""
	}
	return d.t.Format(time.DateOnly)
}

func (d *dateFlag) Set(s string) error {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return fmt.Errorf("want a date YYYY-MM-DD, got %q", s)
	}
	d.t = t
	return nil
}

// load reads the configuration and checks the settings a command needs.
func load(required ...string) (config.Config, error) {
	cfg, err := config.FromEnv()
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Require(required...)
}

func sourceInit(ctx context.Context, args []string) error {
	if err := flags("source init", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	cfg, err := load("SOURCE_DATABASE_URL")
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.SourceDatabaseURL)
	if err != nil {
		return fmt.Errorf("source database: %w", err)
	}
	defer pool.Close()
	return source.Init(ctx, pool)
}

func seedCmd(ctx context.Context, args []string, stderr io.Writer) error {
	opts := seed.Options{}
	from, to := dateFlag{}, dateFlag{}
	_ = from.Set("2024-11-01")
	_ = to.Set("2026-10-31")
	var seedVal uint64
	err := flags("seed", args, func(fs *flag.FlagSet) {
		fs.IntVar(&opts.Merchants, "merchants", 30, "number of merchants")
		fs.IntVar(&opts.Orders, "orders", 200_000, "number of orders")
		fs.Uint64Var(&seedVal, "seed", 1, "random seed; the same seed loads the same data")
		fs.Var(&from, "from", "first day of orders (YYYY-MM-DD)")
		fs.Var(&to, "to", "last day of orders (YYYY-MM-DD)")
	})
	if err != nil {
		return err
	}
	cfg, err := load("SOURCE_DATABASE_URL")
	if err != nil {
		return err
	}
	opts.Seed, opts.From, opts.To, opts.Location = seedVal, from.t, to.t, cfg.Location()
	if err := opts.Validate(); err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.SourceDatabaseURL)
	if err != nil {
		return fmt.Errorf("source database: %w", err)
	}
	defer pool.Close()
	if bar := progress(stderr, opts.Orders, "seeding orders"); bar != nil {
		opts.Progress = func(done int) { _ = bar.Set(done) }
		defer bar.Finish()
	}
	return seed.Run(ctx, pool, opts)
}

func migrateCmd(ctx context.Context, args []string) error {
	if err := flags("migrate", args, func(*flag.FlagSet) {}); err != nil {
		return err
	}
	cfg, err := load("SOURCE_DATABASE_URL", "ANALYTICS_DATABASE_URL")
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.AnalyticsDatabaseURL)
	if err != nil {
		return fmt.Errorf("analytics database: %w", err)
	}
	defer pool.Close()
	return schema.Migrate(ctx, pool, schema.Options{
		SourceDatabaseURL: cfg.SourceDatabaseURL, Timezone: cfg.Timezone, ChangeLookback: cfg.ChangeLookback,
	})
}

func refreshCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var merchant int64
	from, to := dateFlag{}, dateFlag{}
	err := flags("refresh", args, func(fs *flag.FlagSet) {
		fs.Int64Var(&merchant, "merchant", 0, "refresh only this merchant")
		fs.Var(&from, "from", "first business day to refresh (with --to)")
		fs.Var(&to, "to", "last business day to refresh (with --from)")
	})
	if err != nil {
		return err
	}
	if from.t.IsZero() != to.t.IsZero() {
		return errors.New("refresh: --from and --to go together")
	}
	if !from.t.IsZero() && from.t.After(to.t) {
		return errors.New("refresh: --from is after --to")
	}
	if merchant < 0 {
		return errors.New("refresh: --merchant must be a positive id")
	}
	cfg, err := load("ANALYTICS_DATABASE_URL")
	if err != nil {
		return err
	}
	pool, err := db.Open(ctx, cfg.AnalyticsDatabaseURL)
	if err != nil {
		return fmt.Errorf("analytics database: %w", err)
	}
	defer pool.Close()
	r := refresh.New(pool)
	start := time.Now()

	if merchant == 0 && from.t.IsZero() {
		var bar *progressbar.ProgressBar
		n, err := r.Changed(ctx, func(done, total int) {
			if bar == nil {
				bar = progress(stderr, total, "refreshing merchants")
			}
			if bar != nil {
				_ = bar.Set(done)
			}
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "refreshed %d merchants with changes in %s\n", n, time.Since(start).Round(time.Millisecond))
		return nil
	}
	ids := []int64{merchant}
	if merchant == 0 {
		if ids, err = r.SourceMerchants(ctx); err != nil {
			return err
		}
	}
	bar := progress(stderr, len(ids), "refreshing merchants")
	if err := r.Merchants(ctx, ids, from.t, to.t, func(done, _ int) {
		if bar != nil {
			_ = bar.Set(done)
		}
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "refreshed %d merchants in %s\n", len(ids), time.Since(start).Round(time.Millisecond))
	return nil
}

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
	readURL := cfg.AnalyticsDatabaseURL
	if u := os.Getenv("ANALYTICS_READ_DATABASE_URL"); u != "" {
		readURL = u
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
	router, err := httpapi.NewRouter(httpapi.Options{Reader: reader, Verifier: verifier, Ready: apiPool.Ping, Logger: log})
	if err != nil {
		return err
	}

	if withWorker {
		stopWorker, err := startWorker(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stopWorker()
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "with_worker", withWorker)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
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
	stop, err := startWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("worker started", "refresh_interval", cfg.RefreshInterval.String())
	<-ctx.Done()
	log.Info("shutting down")
	stop()
	return nil
}

// startWorker starts a River client working refresh jobs; the returned func stops it,
// letting running jobs finish (a refresh is one transaction, so a cut one is simply retried).
func startWorker(ctx context.Context, cfg config.Config, log *slog.Logger) (func(), error) {
	pool, err := db.Open(ctx, cfg.AnalyticsDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("analytics database: %w", err)
	}
	client, err := jobs.NewClient(jobs.Config{
		Pool: pool, Refresher: refresh.New(pool), RefreshInterval: cfg.RefreshInterval, Workers: 4, Logger: log,
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	// River's own context must outlive the signal so Stop can finish running jobs.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("start river: %w", err)
	}
	return func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			log.Warn("river stop", "err", err)
		}
		pool.Close()
	}, nil
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

func tokenCmd(args []string, stdout io.Writer) error {
	var merchant int64
	var admin bool
	var ttl time.Duration
	err := flags("token", args, func(fs *flag.FlagSet) {
		fs.Int64Var(&merchant, "merchant", 0, "merchant id")
		fs.BoolVar(&admin, "admin", false, "an admin token")
		fs.DurationVar(&ttl, "ttl", 24*time.Hour, "lifetime")
	})
	if err != nil {
		return err
	}
	if merchant <= 0 && !admin {
		return errors.New("token: --merchant must be a positive id")
	}
	if ttl <= 0 {
		return errors.New("token: --ttl must be positive")
	}
	cfg, err := load("JWT_SECRET")
	if err != nil {
		return err
	}
	if cfg.JWTSecret == "" {
		return errors.New("JWT_SECRET is not set: token signs with it even when serve verifies with JWT_PUBLIC_KEY_FILE")
	}
	role := auth.RoleMerchant
	if admin {
		role = auth.RoleAdmin
	}
	tok, err := auth.Issue([]byte(cfg.JWTSecret), merchant, role, ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// progress returns a progress bar on a terminal, nil otherwise (logs and CI stay clean).
func progress(w io.Writer, total int, what string) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
}
