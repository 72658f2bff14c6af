// Package refresh drives the PL/pgSQL refresh procedures of sql/code: the change scan, and the
// per-merchant refresh, each unit of work in one transaction. River jobs (package jobs) and
// the `refresh` command both go through here.
package refresh

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// Refresher runs refreshes against the analytics database (as its owner, not the API role).
type Refresher struct {
	pool *pgxpool.Pool
	// StatementTimeout, when set, bounds each transaction's work (one CALL): a refresh that
	// cannot finish in it fails, is retried in smaller pieces, and in the end is discarded
	// rather than holding locks and a source connection without limit.
	StatementTimeout time.Duration
	// Concurrency is how many merchants Changed and Merchants refresh at once (default 1).
	Concurrency int
}

// New returns a Refresher on pool.
func New(pool *pgxpool.Pool) *Refresher { return &Refresher{pool: pool} }

// inTx runs fn in one transaction under the statement timeout.
func (r *Refresher) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if r.StatementTimeout > 0 {
			if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)",
				strconv.FormatInt(r.StatementTimeout.Milliseconds(), 10)); err != nil {
				return fmt.Errorf("set statement timeout: %w", err)
			}
		}
		return fn(tx)
	})
}

// Scan marks the merchant days whose orders changed since the watermark and returns how many
// it newly marked. Two transactions: the source's horizon must be read before, and in an
// older snapshot than, the scan itself (sql/code/scan.sql explains why).
func (r *Refresher) Scan(ctx context.Context) (int64, error) {
	var horizon time.Time
	if err := r.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT refresh.source_horizon()").Scan(&horizon)
	}); err != nil {
		return 0, fmt.Errorf("read source horizon: %w", err)
	}
	var n int64
	if err := r.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT refresh.scan_changes($1)", horizon).Scan(&n)
	}); err != nil {
		return 0, fmt.Errorf("scan changes: %w", err)
	}
	return n, r.tidy(ctx, tidyQueues) // the worker's refresh jobs leave dead rows behind
}

// Reconcile compares per merchant × month checksums of the source and the aggregates, marks
// the months that differ dirty, and returns how many merchant months drifted. It scans for
// changes first, so that what the scan can see is not taken for drift.
func (r *Refresher) Reconcile(ctx context.Context) (int64, error) {
	if _, err := r.Scan(ctx); err != nil {
		return 0, err
	}
	var n int64
	if err := r.inTx(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT refresh.reconcile()").Scan(&n)
	}); err != nil {
		return 0, fmt.Errorf("reconcile: %w", err)
	}
	// Categories moved under another parent take their subtrees' history along.
	if err := r.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CALL refresh.move_categories(NULL)")
		return err
	}); err != nil {
		return 0, fmt.Errorf("move categories: %w", err)
	}
	return n, nil
}

// LastReconcile returns when the last reconciliation started (zero: never).
func (r *Refresher) LastReconcile(ctx context.Context) (time.Time, error) {
	var last *time.Time
	if err := r.pool.QueryRow(ctx, "SELECT max(last_reconcile_at) FROM pipeline.settings").Scan(&last); err != nil {
		return time.Time{}, fmt.Errorf("last reconciliation: %w", err)
	}
	if last == nil {
		return time.Time{}, nil
	}
	return *last, nil
}

// MarkDays marks a merchant's business days [from, to] dirty, for a refresh job to pick up.
func (r *Refresher) MarkDays(ctx context.Context, merchantID int64, from, to time.Time) error {
	if _, err := r.pool.Exec(ctx, "CALL refresh.mark_days($1, $2, $3)", merchantID, from, to); err != nil {
		return fmt.Errorf("mark merchant %d days dirty: %w", merchantID, err)
	}
	return nil
}

// ListMerchantsToEnqueue lists the merchants with dirty days whose latest refresh job was not
// discarded: the periodic jobs' work (parked merchants wait for an operator).
func (r *Refresher) ListMerchantsToEnqueue(ctx context.Context) ([]int64, error) {
	return r.ids(ctx, "SELECT * FROM refresh.merchants_to_enqueue()", "list merchants to enqueue")
}

// ListSourceMerchants lists every merchant of the source.
func (r *Refresher) ListSourceMerchants(ctx context.Context) ([]int64, error) {
	return r.ids(ctx, "SELECT * FROM refresh.source_merchants()", "list source merchants")
}

func (r *Refresher) ids(ctx context.Context, q, what string) ([]int64, error) {
	rows, _ := r.pool.Query(ctx, q)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ids, nil
}

// RefreshDirty recomputes the dirty days of one merchant and returns how many it rewrote: all
// in one transaction when maxDays is 0, else in one transaction per maxDays calendar days.
// A failed transaction changes nothing: its old figures and dirty marks stay.
func (r *Refresher) RefreshDirty(ctx context.Context, merchantID int64, maxDays int) (int, error) {
	var limit *int
	if maxDays > 0 {
		limit = &maxDays
	}
	total := 0
	for {
		var days, left int
		err := r.inTx(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "CALL refresh.refresh_dirty($1, $2, NULL, NULL)", merchantID, limit).Scan(&days, &left)
		})
		if err != nil {
			return total, fmt.Errorf("refresh merchant %d: %w", merchantID, err)
		}
		total += days
		// Days marked while an unlimited refresh ran are left to the next job.
		if limit == nil || left == 0 || days == 0 {
			return total, r.tidy(ctx, tidyGrown)
		}
	}
}

// RefreshRange recomputes one merchant's business days [from, to] in one transaction.
func (r *Refresher) RefreshRange(ctx context.Context, merchantID int64, from, to time.Time) error {
	err := r.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CALL refresh.refresh_days($1, $2, $3)", merchantID, from, to)
		return err
	})
	if err != nil {
		return fmt.Errorf("refresh merchant %d %s..%s: %w", merchantID, from.Format(time.DateOnly), to.Format(time.DateOnly), err)
	}
	return nil
}

// ReadMerchantDays returns the business days spanned by a merchant's orders; ok is false when it
// has none.
func (r *Refresher) ReadMerchantDays(ctx context.Context, merchantID int64) (from, to time.Time, ok bool, err error) {
	var f, t *time.Time
	if err := r.pool.QueryRow(ctx, "SELECT * FROM refresh.merchant_days($1)", merchantID).Scan(&f, &t); err != nil {
		return from, to, false, fmt.Errorf("span of merchant %d: %w", merchantID, err)
	}
	if f == nil || t == nil {
		return from, to, false, nil
	}
	return *f, *t, true, nil
}

// Progress is told how many units of work are done out of how many. It may be called from
// several goroutines, one call at a time.
type Progress func(done, total int)

// each runs fn for every merchant, Concurrency at a time (each its own transactions on its own
// connection), reporting progress; it stops at the first error.
func (r *Refresher) each(ctx context.Context, ids []int64, progress Progress, fn func(context.Context, int64) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(r.Concurrency, 1))
	var mu sync.Mutex
	done := 0
	for _, id := range ids {
		g.Go(func() error {
			if err := fn(ctx, id); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			done++
			if progress != nil {
				progress(done, len(ids))
			}
			return nil
		})
	}
	return g.Wait()
}

// RefreshChanged scans for changes and refreshes every merchant with dirty days, one transaction per
// merchant. It returns how many merchants it refreshed.
func (r *Refresher) RefreshChanged(ctx context.Context, progress Progress) (int, error) {
	if _, err := r.Scan(ctx); err != nil {
		return 0, err
	}
	return r.RefreshAllDirty(ctx, progress)
}

// RefreshAllDirty refreshes every merchant with dirty days, without scanning first (reconciliation has
// just scanned), and returns how many merchants it refreshed. Merchants with a few recent
// days are refreshed in Concurrency sets, one transaction each, sharing remote queries
// (refresh.dirty_sets); a merchant with a long span of dirty days is a set of its own.
func (r *Refresher) RefreshAllDirty(ctx context.Context, progress Progress) (int, error) {
	rows, _ := r.pool.Query(ctx, "SELECT * FROM refresh.dirty_sets($1)", max(r.Concurrency, 1))
	sets, err := pgx.CollectRows(rows, pgx.RowTo[[]int64])
	if err != nil {
		return 0, fmt.Errorf("group dirty merchants: %w", err)
	}
	total := 0
	for _, set := range sets {
		total += len(set)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(r.Concurrency, 1))
	var mu sync.Mutex
	done := 0
	for _, set := range sets {
		g.Go(func() error {
			if err := r.refreshSet(gctx, set); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			done += len(set)
			if progress != nil {
				progress(done, total)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return total, r.tidy(ctx, tidyChanged)
}

// tidyMode is which tables tidy finds due (refresh.tables_to_tidy).
type tidyMode int

const (
	// tidyGrown, after each merchant or set: tables analyzed when they doubled and vacuumed
	// when they tripled. Planned on stale row counts, a backfill's reads of the next merchants
	// turn into scans of every merchant's rows; analyzing more often slows the backfill.
	tidyGrown tidyMode = iota
	// tidyChanged, at the end of a run: autovacuum's rules (a tenth changed to analyze, a fifth
	// to vacuum), for the API's next reads, and the index rebuilds.
	tidyChanged
	// tidyQueues, after a change scan: the change queues alone, so the worker's periodic scan
	// stays quick.
	tidyQueues
)

// fraction is refresh.tables_to_tidy's argument: the share of a table's rows that makes it
// due to analyze (NULL: the queues only).
func (m tidyMode) fraction() *float32 {
	var f float32
	switch m {
	case tidyGrown:
		f = 1
	case tidyChanged:
		f = 0.1
	default:
		return nil
	}
	return &f
}

// Maintain is the upkeep at the end of a refresh run (tidy at a tenth changed, index rebuilds)
// for the worker, whose refresh jobs run one merchant each and never end a run: its hourly
// reconciliation calls it.
func (r *Refresher) Maintain(ctx context.Context) error {
	return r.tidy(ctx, tidyChanged)
}

// tidyLock keeps tidy to one session at a time: parallel sets call it after each merchant,
// and two ANALYZEs of one table collide on its statistics rows.
const tidyLock = "hashtextextended('merchantagg.tidy', 0)"

// tidy vacuums and analyzes the aggregate tables, the order snapshot and the change queues
// that refresh.tables_to_tidy finds due in mode, even where autovacuum is off
// or behind; planned without statistics, a year's product breakdown was measured 5× slower.
// At the end of a run it also rebuilds the indexes a backfill left half empty. It does nothing
// when another session is tidying.
func (r *Refresher) tidy(ctx context.Context, mode tidyMode) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("tidy: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+tidyLock+")").Scan(&locked); err != nil {
		return fmt.Errorf("tidy: %w", err)
	}
	if !locked {
		return nil
	}
	defer func() {
		// A session lock outlives a failed statement: end the session if the unlock fails.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock("+tidyLock+")"); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	type due struct {
		Table           string
		Vacuum, Analyze bool
	}
	rows, _ := conn.Query(ctx, "SELECT * FROM refresh.tables_to_tidy($1)", mode.fraction())
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[due])
	if err != nil {
		return fmt.Errorf("list tables to tidy: %w", err)
	}
	for _, t := range tables { // names quoted by format('%I.%I')
		cmd := "ANALYZE "
		switch {
		case t.Vacuum && t.Analyze:
			cmd = "VACUUM (ANALYZE) "
		case t.Vacuum:
			cmd = "VACUUM "
		}
		if _, err := conn.Exec(ctx, cmd+t.Table); err != nil {
			return fmt.Errorf("tidy %s: %w", t.Table, err)
		}
	}
	if mode == tidyChanged {
		return rebuildIndexes(ctx, conn.Conn())
	}
	return nil
}

// rebuildIndexes rebuilds the indexes that refresh.indexes_to_rebuild finds half empty, without
// blocking reads or refreshes (REINDEX CONCURRENTLY), and drops what a rebuild that failed left.
// Only at the end of a run: during a backfill every table keeps doubling.
func rebuildIndexes(ctx context.Context, conn *pgx.Conn) error {
	type due struct {
		Index     string
		TableRows int64
		Invalid   bool
	}
	rows, _ := conn.Query(ctx, "SELECT * FROM refresh.indexes_to_rebuild()")
	indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[due])
	if err != nil {
		return fmt.Errorf("list indexes to rebuild: %w", err)
	}
	for _, i := range indexes { // names quoted by format('%I.%I')
		if i.Invalid {
			if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+i.Index); err != nil {
				return fmt.Errorf("drop the failed rebuild %s: %w", i.Index, err)
			}
			continue
		}
		if _, err := conn.Exec(ctx, "REINDEX INDEX CONCURRENTLY "+i.Index); err != nil {
			return fmt.Errorf("rebuild %s: %w", i.Index, err)
		}
		if _, err := conn.Exec(ctx, "CALL refresh.index_built($1, $2)", i.Index, i.TableRows); err != nil {
			return fmt.Errorf("record the rebuild of %s: %w", i.Index, err)
		}
	}
	return nil
}

// refreshSet refreshes the dirty days of a set of merchants in one transaction.
func (r *Refresher) refreshSet(ctx context.Context, ids []int64) error {
	if len(ids) == 1 {
		_, err := r.RefreshDirty(ctx, ids[0], 0)
		return err
	}
	err := r.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "CALL refresh.refresh_dirty_set($1, NULL)", ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("refresh merchants %v: %w", ids, err)
	}
	return r.tidy(ctx, tidyGrown)
}

// RefreshMerchants refreshes the given merchants over [from, to], or over all their days when from
// and to are zero. One transaction per merchant.
func (r *Refresher) RefreshMerchants(ctx context.Context, ids []int64, from, to time.Time, progress Progress) error {
	if _, err := r.pool.Exec(ctx, "CALL refresh.load_reference()"); err != nil {
		return fmt.Errorf("load reference data: %w", err)
	}
	err := r.each(ctx, ids, progress, func(ctx context.Context, id int64) error {
		f, t := from, to
		if f.IsZero() {
			var ok bool
			var err error
			if f, t, ok, err = r.ReadMerchantDays(ctx, id); err != nil || !ok {
				return err
			}
		}
		if err := r.RefreshRange(ctx, id, f, t); err != nil {
			return err
		}
		return r.tidy(ctx, tidyGrown)
	})
	if err != nil {
		return err
	}
	return r.tidy(ctx, tidyChanged)
}
