// Package jobs runs refreshes as River jobs: a periodic change scan that enqueues one refresh
// job per merchant with dirty days, and the per-merchant refresh job, retried with River's
// exponential backoff.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

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
	return river.InsertOpts{MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight}}
}

// RefreshMerchantWorker works RefreshMerchantArgs.
type RefreshMerchantWorker struct {
	river.WorkerDefaults[RefreshMerchantArgs]
	Refresher *refresh.Refresher
	Logger    *slog.Logger
}

// Timeout overrides River's one-minute default: a large merchant's backfill takes longer.
func (w *RefreshMerchantWorker) Timeout(*river.Job[RefreshMerchantArgs]) time.Duration {
	return 30 * time.Minute
}

// Work refreshes the merchant in one transaction.
func (w *RefreshMerchantWorker) Work(ctx context.Context, job *river.Job[RefreshMerchantArgs]) error {
	start := time.Now()
	days, err := w.Refresher.RefreshDirty(ctx, job.Args.MerchantID)
	if err != nil {
		return err
	}
	w.Logger.Info("refreshed merchant", "merchant_id", job.Args.MerchantID, "days", days,
		"attempt", job.Attempt, "duration_ms", time.Since(start).Milliseconds())
	return nil
}

// ScanChangesArgs asks for a change scan.
type ScanChangesArgs struct{}

// Kind implements river.JobArgs.
func (ScanChangesArgs) Kind() string { return "scan_changes" }

// InsertOpts keeps at most one scan in flight.
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
	ids, err := w.Refresher.DirtyMerchants(ctx)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: RefreshMerchantArgs{MerchantID: id}}
	}
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue refresh jobs: %w", err)
	}
	w.Logger.Info("change scan", "marked_days", marked, "merchants", len(ids))
	return nil
}

// Config is what a working River client needs.
type Config struct {
	Pool            *pgxpool.Pool
	Refresher       *refresh.Refresher
	RefreshInterval time.Duration
	Workers         int
	Logger          *slog.Logger
}

// NewClient builds a River client that works refresh jobs and schedules the change scan every
// RefreshInterval (on the elected leader only; it also runs at start).
func NewClient(c Config) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &RefreshMerchantWorker{Refresher: c.Refresher, Logger: c.Logger})
	river.AddWorker(workers, &ScanChangesWorker{Refresher: c.Refresher, Logger: c.Logger})
	client, err := river.NewClient(riverpgxv5.New(c.Pool), &river.Config{
		Logger:  c.Logger,
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: max(c.Workers, 1)}},
		Workers: workers,
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(
			river.PeriodicInterval(c.RefreshInterval),
			func() (river.JobArgs, *river.InsertOpts) { return ScanChangesArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true},
		)},
	})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}
