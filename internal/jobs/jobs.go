// Package jobs runs refreshes as River jobs: a periodic change scan and a periodic
// reconciliation that enqueue one refresh job per merchant with dirty days, and the
// per-merchant refresh job, retried with River's exponential backoff in ever smaller pieces.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/merchantagg/merchantagg/internal/metrics"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// inFlight are the job states in which a duplicate is refused. River requires available,
// pending, running and scheduled; retryable is added so a failing merchant is not piled up.
// completed is left out on purpose: otherwise a finished job would block the next refresh of
// the merchant until River's cleaner removes it (24 h).
var inFlight = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
	rivertype.JobStateRetryable, rivertype.JobStateScheduled,
}

// RefreshMerchantArgs asks for a refresh of every dirty day of one merchant.
type RefreshMerchantArgs struct {
	MerchantID int64 `json:"merchant_id" river:"unique"`
}

// Kind implements river.JobArgs.
func (RefreshMerchantArgs) Kind() string { return "refresh_merchant" }

// InsertOpts makes the job unique per merchant while in flight. A day marked dirty while a job
// runs is caught by the next scan's job, so refusing the duplicate loses nothing.
func (RefreshMerchantArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight}}
}

// RefreshMerchantWorker works RefreshMerchantArgs.
type RefreshMerchantWorker struct {
	river.WorkerDefaults[RefreshMerchantArgs]
	Refresher *refresh.Refresher
	Logger    *slog.Logger
}

// chunkDays is how many calendar days of a merchant a retry refreshes per transaction: the
// first attempt does everything in one, each retry after a failure halves the piece, down to
// one day. A merchant too big for the statement timeout thus still converges, and one that
// fails for another reason (source down) fails the same way and is retried with backoff.
func chunkDays(attempt int) int {
	if attempt <= 1 {
		return 0
	}
	return max(1024>>min(attempt-2, 10), 1)
}

// Work refreshes the merchant's dirty days.
func (w *RefreshMerchantWorker) Work(ctx context.Context, job *river.Job[RefreshMerchantArgs]) error {
	start := time.Now()
	chunk := chunkDays(job.Attempt)
	days, err := w.Refresher.RefreshDirty(ctx, job.Args.MerchantID, chunk)
	if err != nil {
		return err
	}
	w.Logger.Info("refreshed merchant", "merchant_id", job.Args.MerchantID, "days", days,
		"attempt", job.Attempt, "chunk_days", chunk, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// ScanChangesArgs asks for a change scan.
type ScanChangesArgs struct{}

// Kind implements river.JobArgs.
func (ScanChangesArgs) Kind() string { return "scan_changes" }

// InsertOpts keeps at most one scan in flight; a failed scan is redone by the next period.
func (ScanChangesArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight}}
}

// ScanChangesWorker works ScanChangesArgs: it marks changed days dirty and enqueues a refresh
// job per dirty merchant.
type ScanChangesWorker struct {
	river.WorkerDefaults[ScanChangesArgs]
	Refresher *refresh.Refresher
	Logger    *slog.Logger
}

// Work scans and enqueues.
func (w *ScanChangesWorker) Work(ctx context.Context, job *river.Job[ScanChangesArgs]) error {
	marked, err := w.Refresher.Scan(ctx)
	if err != nil {
		return err
	}
	n, err := enqueueDirty(ctx, w.Refresher)
	if err != nil {
		return err
	}
	w.Logger.Info("change scan", "marked_days", marked, "merchants", n)
	return nil
}

// ReconcileArgs asks for a reconciliation of the aggregates with the source. Scheduled marks
// the periodic ones, which skip when a reconciliation ran within half their interval: every
// start of a worker schedules one, and a restart should not read the whole source again.
type ReconcileArgs struct {
	Scheduled bool `json:"scheduled,omitempty"`
}

// Kind implements river.JobArgs.
func (ReconcileArgs) Kind() string { return "reconcile" }

// InsertOpts keeps at most one reconciliation in flight.
func (ReconcileArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight}}
}

// ReconcileWorker works ReconcileArgs: it marks drifted merchant months dirty and enqueues
// their refresh jobs.
type ReconcileWorker struct {
	river.WorkerDefaults[ReconcileArgs]
	Refresher *refresh.Refresher
	Logger    *slog.Logger
	Interval  time.Duration // of the scheduled reconciliations
}

// Work reconciles, enqueues, and maintains the tables (refresh.Refresher.Maintain).
func (w *ReconcileWorker) Work(ctx context.Context, job *river.Job[ReconcileArgs]) error {
	if job.Args.Scheduled {
		last, err := w.Refresher.LastReconcile(ctx)
		if err != nil {
			return err
		}
		if !last.IsZero() && time.Since(last) < w.Interval/2 {
			w.Logger.Info("reconciliation skipped", "last", last, "interval", w.Interval.String())
			return nil
		}
	}
	drifted, err := w.Refresher.Reconcile(ctx)
	if err != nil {
		return err
	}
	n, err := enqueueDirty(ctx, w.Refresher)
	if err != nil {
		return err
	}
	if err := w.Refresher.Maintain(ctx); err != nil {
		return err
	}
	level := slog.LevelInfo
	if drifted > 0 {
		level = slog.LevelWarn // drift means a change escaped the scan: worth a look
	}
	w.Logger.Log(ctx, level, "reconciliation", "drifted_months", drifted, "merchants", n)
	return nil
}

// enqueueDirty inserts a refresh job for every merchant with dirty days, except those whose
// last job was discarded (duplicates of jobs in flight are refused by uniqueness), and
// returns how many merchants it asked for.
func enqueueDirty(ctx context.Context, r *refresh.Refresher) (int, error) {
	ids, err := r.ListMerchantsToEnqueue(ctx)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: RefreshMerchantArgs{MerchantID: id}}
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return 0, fmt.Errorf("river client: %w", err)
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return 0, fmt.Errorf("enqueue refresh jobs: %w", err)
	}
	return len(ids), nil
}

// Config is what a River client needs. Only Pool is required for an insert-only client (the
// API's admin refresh and River UI); Refresher makes it work jobs.
type Config struct {
	Pool              *pgxpool.Pool
	Refresher         *refresh.Refresher
	RefreshInterval   time.Duration
	ReconcileInterval time.Duration
	Workers           int
	// MaxAttempts: after this many failed attempts a refresh job is discarded (visible in River
	// UI, to be retried by an operator). JobTimeout cancels an attempt that runs longer.
	MaxAttempts int
	JobTimeout  time.Duration
	// RetryPolicy overrides River's backoff (attempt^4 seconds); tests shorten it.
	RetryPolicy river.ClientRetryPolicy
	Metrics     *metrics.Metrics
	Logger      *slog.Logger
}

// maxRescueMargin bounds how long after JobTimeout a job still running is deemed orphaned
// (its worker died) and handed to another worker; River's rescuer checks every 30 s.
const maxRescueMargin = 30 * time.Second

// NewClient builds a River client. With a Refresher it works refresh jobs and schedules the
// change scan every RefreshInterval and reconciliation every ReconcileInterval (on the
// elected leader only; both also run at start).
func NewClient(c Config) (*river.Client[pgx.Tx], error) {
	host, _ := os.Hostname()
	rc := &river.Config{
		// Operators see which process ran each attempt (River UI, attempted_by).
		ID:          fmt.Sprintf("%s_%d", host, os.Getpid()),
		Logger:      c.Logger,
		MaxAttempts: c.MaxAttempts,
		RetryPolicy: c.RetryPolicy,
	}
	if c.Refresher != nil {
		if c.RefreshInterval <= 0 || c.ReconcileInterval <= 0 {
			return nil, errors.New("river client: refresh and reconcile intervals must be positive")
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, &RefreshMerchantWorker{Refresher: c.Refresher, Logger: c.Logger})
		river.AddWorker(workers, &ScanChangesWorker{Refresher: c.Refresher, Logger: c.Logger})
		river.AddWorker(workers, &ReconcileWorker{Refresher: c.Refresher, Logger: c.Logger, Interval: c.ReconcileInterval})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: max(c.Workers, 1)}}
		rc.JobTimeout = c.JobTimeout
		if c.JobTimeout > 0 {
			rc.RescueStuckJobsAfter = c.JobTimeout + min(c.JobTimeout, maxRescueMargin)
		}
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(c.RefreshInterval),
				func() (river.JobArgs, *river.InsertOpts) { return ScanChangesArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(c.ReconcileInterval),
				func() (river.JobArgs, *river.InsertOpts) { return ReconcileArgs{Scheduled: true}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		}
	}
	if c.Metrics != nil {
		rc.Middleware = []rivertype.Middleware{observe(c.Metrics)}
	}
	client, err := river.NewClient(riverpgxv5.New(c.Pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// observe records each job attempt's duration, failure and retry.
func observe(m *metrics.Metrics) river.WorkerMiddlewareFunc {
	return func(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
		if job.Attempt > 1 {
			m.JobRetries.WithLabelValues(job.Kind).Inc()
		}
		start := time.Now()
		err := doInner(ctx)
		outcome := "ok"
		if err != nil {
			outcome = "error"
			m.JobFailures.WithLabelValues(job.Kind).Inc()
		}
		m.JobDuration.WithLabelValues(job.Kind, outcome).Observe(time.Since(start).Seconds())
		return err
	}
}

// Backfiller queues operator backfills: it marks the days dirty, then enqueues the merchant's
// refresh job. If the insert fails the days stay dirty and the next change scan enqueues them.
type Backfiller struct {
	Client    *river.Client[pgx.Tx]
	Refresher *refresh.Refresher
}

// Backfill implements httpapi.Backfiller.
func (b Backfiller) Backfill(ctx context.Context, merchantID int64, from, to time.Time) (int64, error) {
	if err := b.Refresher.MarkDays(ctx, merchantID, from, to); err != nil {
		return 0, err
	}
	res, err := b.Client.Insert(ctx, RefreshMerchantArgs{MerchantID: merchantID}, nil)
	if err != nil {
		return 0, fmt.Errorf("enqueue refresh of merchant %d: %w", merchantID, err)
	}
	return res.Job.ID, nil
}
