// Package db opens connection pools to the analytics database and runs the API's reads inside
// a transaction scoped to one merchant, so row-level security applies to every query.
package db

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// APIRole is the database role every API connection switches to. It owns nothing and cannot
// bypass RLS (sql/migrations/001_analytics.sql), so RLS holds even with a superuser DSN.
const APIRole = "merchantagg_api"

// Open connects a pool for the pipeline (migrate, refresh, River) and checks it answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// A refresh whose worker died (SIGKILL, lost host) would otherwise run to its end holding
	// the merchant's lock; with this the server notices the closed socket and rolls it back.
	if _, set := cfg.ConnConfig.RuntimeParams["client_connection_check_interval"]; !set {
		cfg.ConnConfig.RuntimeParams["client_connection_check_interval"] = "2s"
	}
	// The refresh procedures steer plans with enable_* settings, whose penalty costs make
	// the planner JIT-compile statements that then run in milliseconds: half a second of
	// compiling per statement, measured on a small merchant's refresh.
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	// Room for River's own connections beside WORKER_CONCURRENCY jobs, or refresh --jobs;
	// connections open only when used. pool_max_conns in the URL wins.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 40
	}
	return connect(ctx, cfg)
}

// apiConns is the API pool's default size: two connections per core of this machine, at
// least 4 (a database on a host of its own: pool_max_conns in the URL).
func apiConns() int32 {
	return int32(max(4, 2*runtime.NumCPU()))
}

// OpenAPI connects a pool whose every connection runs as APIRole.
func OpenAPI(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// An API read is a few index lookups; one that runs for seconds is a fault, and must not
	// hold a pooled connection while clients pile up behind it.
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "5s"
	// Filtered customer figures hash and sort a customer per row: in memory, not in temp files.
	cfg.ConnConfig.RuntimeParams["work_mem"] = "32MB"
	// Reads fan out over generate_series and unnest, whose default row estimates (1000 each)
	// make a 1 ms plan look costly enough to JIT-compile for half a second.
	cfg.ConnConfig.RuntimeParams["jit"] = "off"
	// The reads' lateral unnests take arrays of the row just read: a cache keyed on them
	// (Memoize) never hits, and hashing and keeping every row's arrays costs the series reads.
	cfg.ConnConfig.RuntimeParams["enable_memoize"] = "off"
	// The aggregates a read touches are held in memory, where an index range costs about what
	// the same pages read in order do; at the default 4 the planner prefers bitmap reads of a
	// month's rows.
	cfg.ConnConfig.RuntimeParams["random_page_cost"] = "1.1"
	// Plan each read for its own parameters unless AsMerchant is told otherwise (Plans).
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = string(CustomPlans)
	// A list's generic plan holds about 1 MB of the server's memory per connection, and each
	// shape of list (dimension, filter, sort) is a statement of its own: a smaller cache than
	// pgx's 512 bounds what a connection keeps (statement_cache_capacity in the URL wins).
	if !strings.Contains(url, "statement_cache_capacity") {
		cfg.ConnConfig.StatementCacheCapacity = 64
	}
	// Reads are CPU work on the database server: past about two per core they only share the
	// cores, so each read in flight takes longer and the tail grows with the load (BENCHMARKS.md,
	// the largest merchant at 200 rps). Reads past the pool wait for a connection, instead of
	// slowing those running; serve admits four requests per connection.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = apiConns()
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		if _, err := c.Exec(ctx, "SET ROLE "+APIRole); err != nil {
			return fmt.Errorf("set role %s (has `merchantagg migrate` run?): %w", APIRole, err)
		}
		return nil
	}
	return connect(ctx, cfg)
}

func connect(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, connectError(cfg.ConnConfig, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, connectError(cfg.ConnConfig, err)
	}
	return pool, nil
}

// ErrTimeout is a statement the server cancelled: it ran out of its statement_timeout.
var ErrTimeout = errors.New("statement timeout")

// ErrUnavailable is a database that cannot be reached, or that went away during a read (a
// restart, a crash, a failover): a retry later may succeed.
var ErrUnavailable = errors.New("database unavailable")

// Classify names the server errors callers act on (errors.Is(err, ErrTimeout),
// errors.Is(err, ErrUnavailable)), keeping the server's error in the chain. AsMerchant applies
// it; a read made outside it calls it itself.
func Classify(err error) error {
	if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.QueryCanceled:
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.As(err, &pgErr) && (pgerrcode.IsConnectionException(pgErr.Code) ||
		pgerrcode.IsOperatorIntervention(pgErr.Code)):
		// connection failures; admin_shutdown, crash_shutdown, cannot_connect_now
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.As(err, &connErr):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// connectError says in one line where the connection went and why. pgconn reports every
// attempt (each address, with TLS and without), which mostly fail alike: each distinct reason
// is kept once.
func connectError(cfg *pgx.ConnConfig, err error) error {
	detail := err.Error()
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && errors.Unwrap(ce) != nil {
		var reasons []string
		for _, line := range strings.Split(errors.Unwrap(ce).Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" && !slices.Contains(reasons, line) {
				reasons = append(reasons, line)
			}
		}
		detail = strings.Join(reasons, "; ")
	}
	return &wrapped{msg: fmt.Sprintf("connect to %s:%d/%s as %s: %s", cfg.Host, cfg.Port, cfg.Database, cfg.User, detail), err: err}
}

// wrapped is an error with its own text that keeps the cause in the chain.
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// Plans is how the server plans a transaction's reads (its plan_cache_mode).
type Plans string

const (
	// CustomPlans plans each read for its own parameters. After five runs of a prepared
	// statement the server may switch to a generic plan, which cannot tell a product
	// breakdown (5000 keys) from a payment method's (5) when the dimension is an argument:
	// the year's product breakdown went from 40 ms to 200 ms. Lists write what their plan
	// depends on into their SQL instead (internal/stats), and plan generically.
	CustomPlans Plans = "force_custom_plan"
	// GenericPlans plans each read once per connection, for reads whose best plan does not
	// depend on their parameters (a probe per tile, whatever the merchant or range). For a
	// summary's order and customer figures, planning was more than half of their server time
	// (0.74 against 0.32 ms of CPU).
	GenericPlans Plans = "force_generic_plan"
)

// AsMerchant runs the queued reads in a read-only transaction in which app.merchant_id names
// the merchant, sent as one pipeline: BEGIN, the settings, the reads and COMMIT cost one
// round trip, not one each (a summary made six). The settings are transaction-local, so a
// pooled connection never carries them to the next request. Repeatable read: every query of
// one response sees the same refresh. A read that fails (a statement timeout, say) leaves the
// transaction aborted; it is rolled back before the connection goes back to the pool.
func AsMerchant(ctx context.Context, pool *pgxpool.Pool, merchantID int64, plans Plans, reads *pgx.Batch) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	b.Queue("SELECT set_config('app.merchant_id', $1, true), set_config('plan_cache_mode', $2, true)",
		strconv.FormatInt(merchantID, 10), string(plans))
	if a, ok := ctx.Value(asOfKey{}).(*AsOf); ok && !a.read {
		// Same snapshot as the figures, so the time matches what is shown.
		b.Queue("SELECT covered_watermark, data_version FROM api.merchant_freshness()").Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&a.Time, &a.Version); err != nil {
					return fmt.Errorf("read freshness: %w", err)
				}
			}
			a.read = true
			return rows.Err()
		})
	}
	b.QueuedQueries = append(b.QueuedQueries, reads.QueuedQueries...)
	b.Queue("COMMIT")

	conn, err := pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("acquire connection: %w", err)
		}
		return fmt.Errorf("%w: acquire connection: %w", ErrUnavailable, err)
	}
	defer conn.Release()
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		if conn.Conn().IsClosed() && ctx.Err() == nil {
			// The connection broke under the read: the server went away, not the query.
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if conn.Conn().PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx)) // the pool drops a closed connection
			}
		}
		return Classify(err)
	}
	return nil
}

// AsOf receives the source instant up to which the figures a request read are complete.
type AsOf struct {
	Time    *time.Time // nil before the merchant's first refresh
	Version int64      // the merchant's data version (the API's ETags)
	read    bool
}

type asOfKey struct{}

// WithAsOf returns a context under which AsMerchant fills the returned AsOf on its first call.
func WithAsOf(ctx context.Context) (context.Context, *AsOf) {
	a := &AsOf{}
	return context.WithValue(ctx, asOfKey{}, a), a
}
