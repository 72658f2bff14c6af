package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/stats"
	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

// TableSize is one table of the analytics database, with its indexes and TOAST.
type TableSize struct {
	Table         string  `json:"table"`
	MB            float64 `json:"mb"`
	BytesPerOrder float64 `json:"bytes_per_order"`
}

// Store is the analytics database's size against the source's, table by table.
type Store struct {
	SourceMB    float64     `json:"source_mb"`
	AnalyticsMB float64     `json:"analytics_mb"`
	Tables      []TableSize `json:"tables"`
}

// Rollup compares merchantagg's breakdown and ABC rows (agg.key_months of the breakdown
// dimensions) with the afternoon rollup (merchant × day × status × product) built on the
// same source: size, build time, and an ABC analysis of the largest merchant's random years,
// timed as the statement's server time (EXPLAIN ANALYZE, planning and execution) in both.
type Rollup struct {
	BuildSeconds float64 `json:"build_seconds"`
	MB           float64 `json:"mb"`
	Rows         int64   `json:"rows"`
	// KeyMonthsMB is merchantagg's rows of every breakdown dimension (the rollup has products
	// only); KeyMonthsProductsMB its product rows.
	KeyMonthsMB         float64 `json:"key_months_mb"`
	KeyMonthsProductsMB float64 `json:"key_months_products_mb"`
	Years               int     `json:"years"`
	RollupABCms         float64 `json:"rollup_abc_p50_ms"`
	ABCms               float64 `json:"abc_p50_ms"`
}

const mib = 1 << 20

// storePhase measures the analytics database's tables against the source's size.
func storePhase(ctx context.Context, src, an *pgxpool.Pool, orders int64) (Store, error) {
	var s Store
	var srcBytes int64
	if err := src.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&srcBytes); err != nil {
		return s, fmt.Errorf("source size: %w", err)
	}
	s.SourceMB = float64(srcBytes) / mib
	rows, _ := an.Query(ctx, query("sizes.sql"))
	var dbBytes int64
	for rows.Next() {
		var t string
		var b int64
		if err := rows.Scan(&t, &b, &dbBytes); err != nil {
			return s, fmt.Errorf("table sizes: %w", err)
		}
		if b < mib/2 {
			continue
		}
		s.Tables = append(s.Tables, TableSize{Table: t, MB: float64(b) / mib, BytesPerOrder: float64(b) / float64(orders)})
	}
	if err := rows.Err(); err != nil {
		return s, fmt.Errorf("table sizes: %w", err)
	}
	s.AnalyticsMB = float64(dbBytes) / mib
	return s, nil
}

// rollupPhase builds the afternoon rollup on the source and times both ABC analyses over the
// same random years of the largest merchant (drawn by the load mix's window).
func rollupPhase(ctx context.Context, o Options, src, an *pgxpool.Pool, anURL string, m *mix, years int) (Rollup, error) {
	var ru Rollup
	start := time.Now()
	err := pgx.BeginFunc(ctx, src, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('merchantagg.bench_tz', $1, true)", o.Timezone); err != nil {
			return err
		}
		for _, stmt := range strings.Split(query("rollup.sql"), ";\n") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ru, fmt.Errorf("build the rollup: %w", err)
	}
	ru.BuildSeconds = time.Since(start).Seconds()
	if _, err := src.Exec(ctx, "VACUUM ANALYZE bench_rollup"); err != nil {
		return ru, fmt.Errorf("vacuum the rollup: %w", err)
	}
	if err := src.QueryRow(ctx, "SELECT pg_total_relation_size('bench_rollup'), (SELECT count(*) FROM bench_rollup)").Scan(&ru.MB, &ru.Rows); err != nil {
		return ru, fmt.Errorf("rollup size: %w", err)
	}
	ru.MB /= mib
	// One connection: the API plans a list once per connection and runs the cached plan, so
	// ABC is prepared once here and each year times a run of that plan.
	sep := "?"
	if strings.Contains(anURL, "?") {
		sep = "&"
	}
	api, err := db.OpenAPI(ctx, anURL+sep+"pool_max_conns=1")
	if err != nil {
		return ru, err
	}
	defer api.Close()
	// The table's size (with its key) shared out by the rows' own sizes.
	if err := an.QueryRow(ctx, `
		SELECT pg_total_relation_size('agg.key_months')::float8 * sum(pg_column_size(k.*)) FILTER (WHERE dim <> 't') / sum(pg_column_size(k.*)),
		       pg_total_relation_size('agg.key_months')::float8 * sum(pg_column_size(k.*)) FILTER (WHERE dim = 'p') / sum(pg_column_size(k.*))
		FROM agg.key_months k`).Scan(&ru.KeyMonthsMB, &ru.KeyMonthsProductsMB); err != nil {
		return ru, fmt.Errorf("key rows: %w", err)
	}
	ru.KeyMonthsMB, ru.KeyMonthsProductsMB = ru.KeyMonthsMB/mib, ru.KeyMonthsProductsMB/mib
	abc, err := sqlfiles.Query("abc.sql")
	if err != nil {
		return ru, err
	}
	abc, err = stats.ABCSQL(abc, "value DESC NULLS LAST", stats.Slots{Slot: []int32{0}, Coef: []int32{1}, CCoef: []int32{0}}, "gmv")
	if err != nil {
		return ru, err
	}
	largest := m.merchants[0]
	rnd := rand.New(rand.NewPCG(uint64(years), 0xab))
	var ours, theirs []float64
	for i := range years {
		from, to := m.window(rnd, 365)
		t, err := serverTime(ctx, src, query("rollup_abc.sql"), largest, from, to)
		if err != nil {
			return ru, fmt.Errorf("rollup abc: %w", err)
		}
		theirs = append(theirs, t)
		sql, args, err := pgx.NamedArgs{"merchant_id": largest, "from_day": from, "to_day": to, "a": 0.8, "b": 0.95,
			"class": nil, "page_limit": int64(50), "page_offset": int64(0)}.RewriteQuery(ctx, nil, abc, nil)
		if err != nil {
			return ru, fmt.Errorf("abc: %w", err)
		}
		lits := make([]string, len(args))
		for j, a := range args {
			if lits[j], err = literal(a); err != nil {
				return ru, fmt.Errorf("abc: %w", err)
			}
		}
		b := explainBatch("EXECUTE bench_abc("+strings.Join(lits, ", ")+")", &t)
		if i == 0 {
			b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "PREPARE bench_abc AS " + sql}}, b.QueuedQueries...)
		}
		if err = db.AsMerchant(ctx, api, largest, db.GenericPlans, b); err != nil {
			return ru, fmt.Errorf("abc: %w", err)
		}
		ours = append(ours, t)
	}
	ru.Years, ru.RollupABCms, ru.ABCms = years, median(theirs), median(ours)
	return ru, nil
}

// literal is an argument of the timed ABC written as SQL.
func literal(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "NULL", nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case time.Time:
		return "'" + x.Format(time.DateOnly) + "'", nil
	}
	return "", fmt.Errorf("no literal for %T", v)
}

// serverTime is a statement's planning and execution time as the server reports it.
func serverTime(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) (float64, error) {
	var t float64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		b := explainBatch(sql, &t, args...)
		return tx.SendBatch(ctx, b).Close()
	})
	return t, err
}

// explainBatch queues EXPLAIN (ANALYZE, TIMING OFF) of sql and writes its planning plus
// execution time, in ms, to t.
func explainBatch(sql string, t *float64, args ...any) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) "+sql, args...).QueryRow(func(row pgx.Row) error {
		var plan []byte
		if err := row.Scan(&plan); err != nil {
			return err
		}
		var out []struct {
			Planning  float64 `json:"Planning Time"`
			Execution float64 `json:"Execution Time"`
		}
		if err := json.Unmarshal(plan, &out); err != nil || len(out) == 0 {
			return fmt.Errorf("read the plan's times: %v", err)
		}
		*t = out[0].Planning + out[0].Execution
		return nil
	})
	return b
}

// LargeSeller is the large-seller shape (Options.LargeSeller): one merchant with 50k products
// and about a million customers, in a source and an analytics database of its own so that it
// is not the largest merchant of the other figures. Its ABC analysis and product breakdown
// over random years are set against the main run's largest merchant's (5000 products).
type LargeSeller struct {
	Orders          int64   `json:"orders"`
	Products        int64   `json:"products"`
	Customers       int64   `json:"customers"`
	BackfillSeconds float64 `json:"backfill_seconds"`
	ABCms           float64 `json:"abc_random_year_p50_ms"`
	ProductMs       float64 `json:"product_breakdown_random_year_p50_ms"`
	BaseProducts    int64   `json:"base_products"`
	BaseABCms       float64 `json:"base_abc_random_year_p50_ms"`
	BaseProductMs   float64 `json:"base_product_breakdown_random_year_p50_ms"`
}

// largeSellerPaths are the requests whose cost grows with a merchant's number of keys.
var largeSellerPaths = []string{"/v1/abc", "/v1/breakdown/product"}

// largeSellerPhase seeds (once) and backfills the large seller, then times its requests.
func largeSellerPhase(ctx context.Context, o Options, base *Result, st *stage) (*LargeSeller, error) {
	lo := o
	lo.Orders, lo.Merchants, lo.MaxProducts = o.LargeSellerOrders, 1, 50_000
	lo.SourceDB, lo.AnalyticsDB = o.SourceDB+"_large", o.AnalyticsDB+"_large"
	srcURL, anURL := dbtestURL(lo.SourceDB), dbtestURL(lo.AnalyticsDB)
	loc, err := time.LoadLocation(o.Timezone)
	if err != nil {
		return nil, err
	}
	if _, err := prepareSource(ctx, lo, srcURL, loc, st); err != nil {
		return nil, err
	}
	src, err := db.Open(ctx, srcURL)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	ls := &LargeSeller{}
	var first, last time.Time
	if err := src.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM products),
		(SELECT count(DISTINCT customer_id) FROM orders), (SELECT (min(created_at) AT TIME ZONE $1)::date FROM orders),
		(SELECT (max(created_at) AT TIME ZONE $1)::date FROM orders)`, o.Timezone).
		Scan(&ls.Orders, &ls.Products, &ls.Customers, &first, &last); err != nil {
		return nil, fmt.Errorf("large seller's shape: %w", err)
	}
	env := benchEnv(o, srcURL, anURL)
	var total int64 = ls.Orders
	var r Result
	if err := backfill(ctx, lo, src, env, total, &r, st); err != nil {
		return nil, err
	}
	ls.BackfillSeconds = r.BackfillSeconds
	srv, err := startServe(ctx, o.Bin, env)
	if err != nil {
		return nil, err
	}
	defer func() { _, _ = srv.stop() }()
	m := newMix([]int64{1}, first, last, o.Seed)
	eps, err := endpointCosts(ctx, srv.url, m, o.EndpointRequests, largeSellerPaths)
	if err != nil {
		return nil, err
	}
	ls.ABCms, ls.ProductMs = eps[0].RandomP50ms, eps[1].RandomP50ms
	for _, e := range base.Endpoints {
		switch e.Request {
		case "/v1/abc":
			ls.BaseABCms = e.RandomP50ms
		case "/v1/breakdown/product":
			ls.BaseProductMs = e.RandomP50ms
		}
	}
	ls.BaseProducts = base.LargestProducts
	st.say("large seller: %d orders, %d products, %d customers: ABC %.1f ms, product breakdown %.1f ms (5k products: %.1f, %.1f)",
		ls.Orders, ls.Products, ls.Customers, ls.ABCms, ls.ProductMs, ls.BaseABCms, ls.BaseProductMs)
	_, err = srv.stop()
	return ls, err
}
