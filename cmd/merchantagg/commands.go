package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/config"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/schema"
	"github.com/merchantagg/merchantagg/internal/seed"
	"github.com/merchantagg/merchantagg/internal/source"
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
		fs.IntVar(&opts.MaxProducts, "max-products", 5000, "cap of one merchant's catalog (a large seller: 50000)")
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
		SourceDatabaseURL: cfg.SourceDatabaseURL, Timezone: cfg.Timezone,
		ChangeLookback: cfg.ChangeLookback, ChangeMaxTxnAge: cfg.ChangeMaxTxnAge, Log: os.Stderr,
	})
}

// maxJobs bounds refresh --jobs: each job holds a connection to both databases.
const maxJobs = 32

func refreshCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var merchant int64
	jobs := runtime.NumCPU()
	from, to := dateFlag{}, dateFlag{}
	err := flags("refresh", args, func(fs *flag.FlagSet) {
		fs.Int64Var(&merchant, "merchant", 0, "refresh only this merchant")
		fs.Var(&from, "from", "first business day to refresh (with --to)")
		fs.Var(&to, "to", "last business day to refresh (with --from)")
		fs.IntVar(&jobs, "jobs", jobs, "merchants refreshed at once")
	})
	if err != nil {
		return err
	}
	if jobs < 1 || jobs > maxJobs {
		return fmt.Errorf("refresh: --jobs must be between 1 and %d", maxJobs)
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
	r.Concurrency = jobs
	start := time.Now()

	if merchant == 0 && from.t.IsZero() {
		n, err := r.RefreshChanged(ctx, bar(stderr))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "refreshed %d merchants with changes in %s\n", n, time.Since(start).Round(time.Millisecond))
		return nil
	}
	ids := []int64{merchant}
	if merchant == 0 {
		if ids, err = r.ListSourceMerchants(ctx); err != nil {
			return err
		}
	}
	bar := progress(stderr, len(ids), "refreshing merchants")
	if err := r.RefreshMerchants(ctx, ids, from.t, to.t, func(done, _ int) {
		if bar != nil {
			_ = bar.Set(done)
		}
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "refreshed %d merchants in %s\n", len(ids), time.Since(start).Round(time.Millisecond))
	return nil
}

func reconcileCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := flags("reconcile", args, func(*flag.FlagSet) {}); err != nil {
		return err
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
	drifted, err := r.Reconcile(ctx)
	if err != nil {
		return err
	}
	n, err := r.RefreshAllDirty(ctx, bar(stderr))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d merchant months drifted; refreshed %d merchants in %s\n", drifted, n, time.Since(start).Round(time.Millisecond))
	return nil
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

// bar is a refresh.Progress that draws a bar of merchants on a terminal.
func bar(stderr io.Writer) refresh.Progress {
	var b *progressbar.ProgressBar
	return func(done, total int) {
		if b == nil {
			b = progress(stderr, total, "refreshing merchants")
		}
		if b != nil {
			_ = b.Set(done)
		}
	}
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
