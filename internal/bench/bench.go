// Package bench measures merchantagg at scale (`make bench`): API latency under load against a
// baseline computed on the source, the full backfill against a plain GROUP BY, incremental
// refreshes, end-to-end freshness and peak memory. Every figure that has a baseline is taken
// in the same run as it, and each run is saved as JSON and rendered into BENCHMARKS.md.
package bench

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/seed"
	"github.com/merchantagg/merchantagg/internal/source"
)

//go:embed sql/*.sql
var queries embed.FS

func query(name string) string {
	b, err := queries.ReadFile("sql/" + name)
	if err != nil {
		panic("bench: no query " + name) // a constant name; the smoke test runs every one
	}
	return string(b)
}

// Options choose the scale and the load.
type Options struct {
	Orders, Merchants int
	Seed              uint64
	// SourceDB and AnalyticsDB are database names on the server of PGHOST/PGPORT/PGUSER (or
	// TEST_DATABASE_URL). A source already holding Orders orders is reused (seeding 10M takes
	// minutes); the analytics database is always rebuilt, since its backfill is measured.
	SourceDB, AnalyticsDB string
	// Bin is the merchantagg binary: refresh and serve run as processes so that their peak
	// memory is theirs alone.
	Bin      string
	Rates    []int         // requests per second of the load runs
	Duration time.Duration // of each load run
	// Baseline requests computed both through the API and directly on the source, with
	// BaselineConcurrency at a time; BaselineBudget bounds the source side's time.
	BaselineRequests, BaselineConcurrency int
	BaselineBudget                        time.Duration
	// EndpointRequests is how many times each kind of request is timed alone.
	EndpointRequests int
	Changes          []int // orders changed before each incremental refresh
	// IncrementalRuns is how many refreshes of each size of change are timed, one after the
	// other, each after changing a new sample of orders: one run is as much the cache's
	// state as the code's (the first after a 10M backfill has measured from 0.8 to 1.1 s).
	IncrementalRuns int
	RefreshInterval time.Duration // of serve --with-worker in the freshness probe
	Timezone        string
	OutDir          string // results/*.json, BENCHMARKS.md and latency.png go here
	Log             io.Writer
	// SkipBackfill reuses an analytics database a previous run refreshed (the 10M backfill
	// takes ~20 minutes); the result then has no backfill figures.
	SkipBackfill bool
	// MaxProducts caps a seeded merchant's catalog (seed.Options.MaxProducts).
	MaxProducts int
	// LargeSellerOrders, when set, adds the large-seller phase: one merchant of that many
	// orders and 50k products in databases of its own.
	LargeSellerOrders int
	// RollupYears is how many random years of the largest merchant time the ABC analysis on
	// the afternoon rollup and on merchantagg.
	RollupYears int
	// Soak, when set, runs only the soak for that long (after the backfill or -skip-backfill)
	// and adds it to the saved result of that size.
	Soak time.Duration
}

// Result is one run, as saved in results/orders-N.json.
type Result struct {
	Date    time.Time `json:"date"`
	Machine string    `json:"machine"`
	// Server is the PostgreSQL version and memory settings of the run (results before had none).
	Server    string   `json:"server,omitempty"`
	Orders    int      `json:"orders"`
	Merchants int      `json:"merchants"`
	Largest   Merchant `json:"largest_merchant"`

	SeedSeconds       float64 `json:"seed_seconds,omitempty"`
	GroupBySeconds    float64 `json:"groupby_seconds"`
	BackfillSeconds   float64 `json:"backfill_seconds"`
	BackfillRowsPerS  float64 `json:"backfill_orders_per_second"`
	BackfillRatio     float64 `json:"backfill_ratio"`
	RefreshPeakRSSMiB float64 `json:"refresh_peak_rss_mib"`
	// BackfillDate is when the backfill above ran, when this run reused its database
	// (-skip-backfill): the figures are that run's.
	BackfillDate   *time.Time `json:"backfill_date,omitempty"`
	backfillReused bool

	Incremental []Incremental `json:"incremental"`
	// IncrementalYear is 1k changes spread over the last year of data (each moves its keys'
	// later months too), refreshed like Incremental.
	IncrementalYear *Incremental `json:"incremental_year,omitempty"`
	// Catalog is the cost of catalog changes.
	Catalog *Catalog `json:"catalog,omitempty"`
	// Store is the analytics database's size, table by table, against the source's.
	Store *Store `json:"store,omitempty"`
	// Rollup is the afternoon rollup's size and ABC time against merchantagg's.
	Rollup *Rollup `json:"rollup,omitempty"`
	// LargestProducts is the largest merchant's number of products.
	LargestProducts int64        `json:"largest_products,omitempty"`
	LargeSeller     *LargeSeller `json:"large_seller,omitempty"`
	Load            []Load       `json:"load"`
	Baseline        Baseline     `json:"baseline"`
	Endpoints       []Endpoint   `json:"endpoints,omitempty"`
	Dashboard       *Dashboard   `json:"dashboard,omitempty"`
	Soak            *Soak        `json:"soak,omitempty"`
	soakOnly        bool
	ServeRSSMiB     float64 `json:"serve_peak_rss_mib"`

	FreshnessSeconds float64 `json:"freshness_seconds"`
	RefreshInterval  string  `json:"refresh_interval"`
}

// Merchant is the largest merchant of the run.
type Merchant struct {
	ID     int64 `json:"id"`
	Orders int64 `json:"orders"`
}

// Incremental is the `merchantagg refresh` runs after changing orders: Changed, Merchants
// and MerchantDays are the first run's change, Seconds the median of Runs (each run's time,
// in order; results saved before runs were repeated have one run, in Seconds).
type Incremental struct {
	Changed      int       `json:"changed_orders"`
	Merchants    int       `json:"merchants"`
	MerchantDays int       `json:"merchant_days"`
	Seconds      float64   `json:"seconds"`
	Runs         []float64 `json:"runs,omitempty"`
}

type stage struct {
	log   io.Writer
	start time.Time
}

func (s *stage) say(format string, args ...any) {
	fmt.Fprintf(s.log, "[%6.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run measures everything and returns the result; Report writes it out.
func Run(ctx context.Context, o Options) (Result, error) {
	st := &stage{log: o.Log, start: time.Now()}
	host, _ := os.Hostname()
	r := Result{Date: time.Now().UTC(), Orders: o.Orders, Merchants: o.Merchants,
		Machine: fmt.Sprintf("%s, %d cores, %s", host, runtime.NumCPU(), runtime.Version())}
	loc, err := time.LoadLocation(o.Timezone)
	if err != nil {
		return r, fmt.Errorf("time zone: %w", err)
	}

	srcURL, anURL := dbtest.URL(o.SourceDB), dbtest.URL(o.AnalyticsDB)
	seeded, err := prepareSource(ctx, o, srcURL, loc, st)
	if err != nil {
		return r, err
	}
	r.SeedSeconds = seeded
	src, err := db.Open(ctx, srcURL)
	if err != nil {
		return r, fmt.Errorf("source: %w", err)
	}
	defer src.Close()

	var merchants []int64
	var first, last time.Time
	var total, largestOrders int64
	if err := src.QueryRow(ctx, query("shape.sql"), o.Timezone).Scan(&merchants, &first, &last, &total, &largestOrders); err != nil {
		return r, fmt.Errorf("read the source's shape: %w", err)
	}
	if len(merchants) == 0 {
		return r, errors.New("the source has no orders")
	}
	r.Largest = Merchant{ID: merchants[0], Orders: largestOrders}
	if err := src.QueryRow(ctx, query("server.sql")).Scan(&r.Server); err != nil {
		return r, fmt.Errorf("read the server's settings: %w", err)
	}
	r.Merchants = len(merchants)

	if err := src.QueryRow(ctx, "SELECT count(*) FROM products WHERE merchant_id = $1", r.Largest.ID).Scan(&r.LargestProducts); err != nil {
		return r, fmt.Errorf("count the largest merchant's products: %w", err)
	}
	env := benchEnv(o, srcURL, anURL)
	if o.SkipBackfill {
		st.say("reusing the refreshed analytics database %s (-skip-backfill)", o.AnalyticsDB)
		r.backfillReused = true
		if _, err := runBin(ctx, o.Bin, env, "refresh"); err != nil { // catch up with the bench's own changes
			return r, err
		}
		if err := vacuum(ctx, anURL, st); err != nil {
			return r, err
		}
	} else if err := backfill(ctx, o, src, env, total, &r, st); err != nil {
		return r, err
	}
	// Sizes right after the backfill, before the phases below change orders: autovacuum is
	// off here, so the changes would leave dead rows in both databases (a reused source has
	// grown by earlier runs' changes: reseed it to measure sizes).
	an, err := db.Open(ctx, anURL)
	if err != nil {
		return r, fmt.Errorf("analytics: %w", err)
	}
	defer an.Close()
	store, err := storePhase(ctx, src, an, total)
	if err != nil {
		return r, err
	}
	r.Store = &store
	st.say("store: analytics %.0f MB for a %.0f MB source (%.2f×)", store.AnalyticsMB, store.SourceMB, store.AnalyticsMB/store.SourceMB)

	if o.Soak > 0 {
		mix := newMix(merchants, first, last, o.Seed)
		if r.Soak, err = soakPhase(ctx, o, env, src, mix, st); err != nil {
			return r, err
		}
		r.soakOnly = true
		return r, nil
	}

	for i, n := range o.Changes {
		var inc Incremental
		for j := range max(o.IncrementalRuns, 1) {
			run, err := incremental(ctx, o, src, env, n, fmt.Sprintf("%d.%d", i, j))
			if err != nil {
				return r, err
			}
			if j == 0 {
				inc = run
			}
			inc.Runs = append(inc.Runs, run.Seconds)
			st.say("incremental: %d orders changed (%d merchant days) refreshed in %.2f s", run.Changed, run.MerchantDays, run.Seconds)
		}
		inc.Seconds = median(inc.Runs)
		r.Incremental = append(r.Incremental, inc)
	}

	if n := 1000; len(o.Changes) > 0 {
		inc, err := incrementalWith(ctx, o, src, env, n, "year", query("change_orders_year.sql"))
		if err != nil {
			return r, err
		}
		r.IncrementalYear = &inc
		st.say("incremental: %d orders changed over a year (%d merchant days) refreshed in %.2f s", inc.Changed, inc.MerchantDays, inc.Seconds)
	}

	if len(o.Changes) > 0 {
		cat, err := catalogPhase(ctx, o, src, env, r.Largest.ID, st)
		if err != nil {
			return r, err
		}
		r.Catalog = &cat
	}

	mix := newMix(merchants, first, last, o.Seed)
	if err := loadPhase(ctx, o, env, mix, &r, st); err != nil {
		return r, err
	}
	if o.RollupYears > 0 {
		ru, err := rollupPhase(ctx, o, src, an, anURL, mix, o.RollupYears)
		if err != nil {
			return r, err
		}
		r.Rollup = &ru
		st.say("rollup: %d rows, %.0f MB, built in %.1f s (merchantagg's breakdown rows %.0f MB); ABC p50 %.1f ms against %.1f ms",
			ru.Rows, ru.MB, ru.BuildSeconds, ru.KeyMonthsMB, ru.RollupABCms, ru.ABCms)
	}
	if err := freshnessPhase(ctx, o, env, src, mix, &r, st); err != nil {
		return r, err
	}
	if o.LargeSellerOrders > 0 {
		if r.LargeSeller, err = largeSellerPhase(ctx, o, &r, st); err != nil {
			return r, err
		}
	}
	return r, nil
}

// benchEnv is the environment of the merchantagg processes for a pair of databases.
func benchEnv(o Options, srcURL, anURL string) []string {
	// The loads are one merchant's, or a few merchants', far past a merchant's fair-use budget
	// by design: the per-merchant rate limits are off (the report says so).
	return append(os.Environ(), "SOURCE_DATABASE_URL="+srcURL, "ANALYTICS_DATABASE_URL="+anURL,
		"AGG_TIMEZONE="+o.Timezone, "JWT_SECRET="+benchSecret, "RATE_LIMIT=0", "ADMIN_RATE_LIMIT=0")
}

// dbtestURL is a database's URL on the bench's server.
func dbtestURL(name string) string { return dbtest.URL(name) }

// backfill rebuilds the analytics database and times its full refresh against the GROUP BY.
func backfill(ctx context.Context, o Options, src *pgxpool.Pool, env []string, total int64, r *Result, st *stage) error {
	if err := dbtest.DropDatabase(ctx, o.AnalyticsDB); err != nil {
		return err
	}
	if err := dbtest.CreateDatabase(ctx, o.AnalyticsDB, ""); err != nil {
		return err
	}
	if _, err := runBin(ctx, o.Bin, env, "migrate"); err != nil {
		return err
	}
	st.say("plain GROUP BY over %d orders on the source", total)
	var err error
	if r.GroupBySeconds, err = timeGroupBy(ctx, src, o.Timezone); err != nil {
		return err
	}
	st.say("  %.2f s; full backfill with `merchantagg refresh`", r.GroupBySeconds)
	run, err := runBin(ctx, o.Bin, env, "refresh")
	if err != nil {
		return err
	}
	r.BackfillSeconds, r.RefreshPeakRSSMiB = run.seconds, run.rssMiB
	r.BackfillRowsPerS = float64(total) / run.seconds
	r.BackfillRatio = run.seconds / r.GroupBySeconds
	st.say("  %.1f s (%.0f orders/s, %.1f× the GROUP BY), peak RSS %.0f MiB", run.seconds, r.BackfillRowsPerS, r.BackfillRatio, run.rssMiB)
	// The backfill leaves gigabytes of WAL behind it (its index rebuilds log every page), and
	// the server checkpoints for minutes after, one checkpoint after another, writing out
	// and syncing the pages: the 1M load runs that overlapped them had p99 88–151 ms against
	// 18–27 ms. What follows measures the service, not that write-back. (A checkpoint is the
	// whole server's, and the bench's two databases share one.)
	start := time.Now()
	if _, err := src.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint after the backfill: %w", err)
	}
	st.say("  checkpoint after the backfill: %.1f s", time.Since(start).Seconds())
	return nil
}

// vacuum clears a reused database of the dead rows earlier runs' changes left (autovacuum is
// off here for steady timings, so nothing else would): index reads over them slowed a reused
// analytics database's loads many times over.
func vacuum(ctx context.Context, url string, st *stage) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	start := time.Now()
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE)"); err != nil {
		return fmt.Errorf("vacuum the reused database: %w", err)
	}
	st.say("  vacuumed the reused database in %.1f s", time.Since(start).Seconds())
	return nil
}

// benchSecret signs the load's tokens; the bench's databases are its own.
const benchSecret = "merchantagg-bench-secret-0123456789abcdef"

// prepareSource reuses a source seeded with the same shape (merchants, seed, catalog cap:
// the database's comment) holding o.Orders orders, else creates and seeds it. It returns the
// seconds spent seeding (0 when reused).
func prepareSource(ctx context.Context, o Options, url string, loc *time.Location, st *stage) (float64, error) {
	shape := fmt.Sprintf("merchantagg bench source: %d merchants, seed %d, catalog cap %d (0: seed default)",
		o.Merchants, o.Seed, o.MaxProducts)
	if pool, err := pgxpool.New(ctx, url); err == nil {
		var n int64
		var comment string
		err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders),
		                                  coalesce(shobj_description((SELECT oid FROM pg_database WHERE datname = current_database()),
		                                                             'pg_database'), '')`).Scan(&n, &comment)
		pool.Close()
		// The bench's own changes add a few orders per run; a source within 1% is this scale.
		if err == nil && comment == shape && n >= int64(o.Orders) && n <= int64(o.Orders)+int64(o.Orders)/100+100 {
			st.say("reusing source %s (%d orders)", o.SourceDB, n)
			return 0, vacuum(ctx, url, st)
		}
	}
	st.say("seeding %d orders of %d merchants into %s", o.Orders, o.Merchants, o.SourceDB)
	if err := dbtest.DropDatabase(ctx, o.SourceDB); err != nil {
		return 0, err
	}
	if err := dbtest.CreateDatabase(ctx, o.SourceDB, ""); err != nil {
		return 0, err
	}
	pool, err := db.Open(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("source: %w", err)
	}
	defer pool.Close()
	if err := source.Init(ctx, pool); err != nil {
		return 0, err
	}
	start := time.Now()
	so := seed.Options{Merchants: o.Merchants, Orders: o.Orders, Seed: o.Seed, Location: loc, MaxProducts: o.MaxProducts,
		From: time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC)}
	if err := seed.Run(ctx, pool, so); err != nil {
		return 0, err
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		return 0, fmt.Errorf("analyze source: %w", err)
	}
	seconds := time.Since(start).Seconds()
	if _, err := pool.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s'", pgx.Identifier{o.SourceDB}.Sanitize(), shape)); err != nil {
		return 0, fmt.Errorf("label source: %w", err)
	}
	return seconds, nil
}

func timeGroupBy(ctx context.Context, src *pgxpool.Pool, tz string) (float64, error) {
	// The better of two runs: the first may pay for reading the table into the cache, which
	// the backfill after it would then get for free.
	best := 0.0
	for range 2 {
		start := time.Now()
		var groups int64
		if err := src.QueryRow(ctx, query("groupby_baseline.sql"), tz).Scan(&groups); err != nil {
			return 0, fmt.Errorf("baseline GROUP BY: %w", err)
		}
		if d := time.Since(start).Seconds(); best == 0 || d < best {
			best = d
		}
	}
	return best, nil
}

// median of at least one value.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// incremental changes n recent orders (a new sample for each sample name) and times one refresh.
func incremental(ctx context.Context, o Options, src *pgxpool.Pool, env []string, n int, sample string) (Incremental, error) {
	return incrementalWith(ctx, o, src, env, n, sample, query("change_orders.sql"))
}

// incrementalWith changes n orders with change (change_orders.sql's parameters) and times one
// refresh.
func incrementalWith(ctx context.Context, o Options, src *pgxpool.Pool, env []string, n int, sample, change string) (Incremental, error) {
	inc := Incremental{}
	salt := fmt.Sprintf("%d-%s-%d", o.Seed, sample, time.Now().UnixNano())
	if err := src.QueryRow(ctx, change, n, salt, o.Timezone).Scan(&inc.Changed, &inc.Merchants, &inc.MerchantDays); err != nil {
		return inc, fmt.Errorf("change %d orders: %w", n, err)
	}
	run, err := runBin(ctx, o.Bin, env, "refresh")
	if err != nil {
		return inc, err
	}
	inc.Seconds = run.seconds
	return inc, nil
}
