package tests

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/jobs"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

func riverClient(t *testing.T, p dbtest.Pair, interval time.Duration) *river.Client[pgx.Tx] {
	t.Helper()
	return riverClientWith(t, p, func(c *jobs.Config) { c.RefreshInterval = interval })
}

// riverClientWith builds a working River client on the pair's analytics database; tune may
// change its configuration (the Refresher's pool is the client's).
func riverClientWith(t *testing.T, p dbtest.Pair, tune func(*jobs.Config)) *river.Client[pgx.Tx] {
	t.Helper()
	an := dbtest.Pool(t, p.AnalyticsURL())
	cfg := jobs.Config{
		Pool: an, Refresher: refresh.New(an), RefreshInterval: time.Hour, ReconcileInterval: time.Hour,
		Workers: 2, Logger: quiet,
	}
	if tune != nil {
		tune(&cfg)
	}
	c, err := jobs.NewClient(cfg)
	require.NoError(t, err)
	return c
}

// fastRetry retries a failed job after 200 ms, so tests see several attempts quickly.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(200 * time.Millisecond)
}

// waitFor returns the first event of a job of kind for which ok holds.
func waitFor(t *testing.T, events <-chan *river.Event, kind string, ok func(*river.Event) bool) *river.Event {
	t.Helper()
	return waitForWithin(t, events, kind, 60*time.Second, ok)
}

// waitForWithin is waitFor with its own deadline.
func waitForWithin(t *testing.T, events <-chan *river.Event, kind string, d time.Duration, ok func(*river.Event) bool) *river.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-events:
			if e.Job.Kind == kind && ok(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event in time", kind)
		}
	}
}

func TestWorkerRefreshesChanges(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src := dbtest.Pool(t, p.SourceURL())
	a := newAPI(t, p)
	const m = 4
	before := summaryOf(t, a, m, "2025-05-01", "2025-05-31")

	c := riverClient(t, p, 300*time.Millisecond)
	events, cancel := c.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	ctx := context.Background()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	changeSource(t, src, m)
	// The periodic scan finds the change and enqueues a refresh job for the merchant.
	start := time.Now()
	for summaryOf(t, a, m, "2025-05-01", "2025-05-31").Orders == before.Orders {
		require.Less(t, time.Since(start), 60*time.Second, "the change never showed")
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, events, "refresh_merchant", func(e *river.Event) bool { return true })
	requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
	requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
}

func TestRefreshJobsAreUniquePerMerchant(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	c := riverClient(t, p, time.Hour) // not started: jobs stay available
	ctx := context.Background()
	first, err := c.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: 5}, nil)
	require.NoError(t, err)
	require.False(t, first.UniqueSkippedAsDuplicate)
	dup, err := c.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: 5}, nil)
	require.NoError(t, err)
	require.True(t, dup.UniqueSkippedAsDuplicate, "one refresh per merchant in flight")
	other, err := c.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: 6}, nil)
	require.NoError(t, err)
	require.False(t, other.UniqueSkippedAsDuplicate)

	// Once the first is completed, a new refresh of the merchant is accepted again.
	_, err = c.JobCancel(ctx, first.Job.ID)
	require.NoError(t, err)
	again, err := c.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: 5}, nil)
	require.NoError(t, err)
	require.False(t, again.UniqueSkippedAsDuplicate)
}

// TestFailedJobIsRetried: with the source unreachable the refresh job fails and is scheduled
// again with backoff; the old figures stay; once the source is back, a retry (what River UI's
// retry button calls) completes and the API is exact.
func TestFailedJobIsRetried(t *testing.T) {
	t.Parallel()
	p, src, an, a, _ := setUp(t)
	ctx := context.Background()
	const m = 6
	before := summaryOf(t, a, m, "2025-05-01", "2025-05-31")
	changeSource(t, src, m)
	_, err := refresh.New(an).Scan(ctx)
	require.NoError(t, err)
	_, err = an.Exec(ctx, "ALTER SERVER merchantagg_source OPTIONS (SET port '1')")
	require.NoError(t, err)

	c := riverClient(t, p, time.Hour)
	events, cancel := c.Subscribe(river.EventKindJobFailed, river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	res, err := c.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: m}, nil)
	require.NoError(t, err)

	// Two failures: each schedules the next attempt later, the second wait longer (backoff).
	var delays []time.Duration
	for attempt := 1; attempt <= 2; attempt++ {
		failed := waitFor(t, events, "refresh_merchant", func(e *river.Event) bool { return e.Kind == river.EventKindJobFailed })
		require.Equal(t, attempt, failed.Job.Attempt)
		require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, failed.Job.State)
		require.Len(t, failed.Job.Errors, attempt)
		delays = append(delays, failed.Job.ScheduledAt.Sub(*failed.Job.AttemptedAt))
		require.Equal(t, before, summaryOf(t, a, m, "2025-05-01", "2025-05-31"), "old figures stay visible")
	}
	require.Greater(t, delays[1], delays[0])

	require.NoError(t, dbtest.Migrate(ctx, p)) // the source is back
	_, err = c.JobRetry(ctx, res.Job.ID)
	require.NoError(t, err)
	done := waitFor(t, events, "refresh_merchant", func(e *river.Event) bool {
		return e.Kind == river.EventKindJobCompleted && e.Job.ID == res.Job.ID
	})
	require.Equal(t, 3, done.Job.Attempt)
	requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
}

// TestReconcileJobMaintains: the worker's refresh jobs never end a run, so its hourly
// reconciliation does the end-of-run upkeep: here it rebuilds an index with no recorded build
// (as after an upgrade to migration 010, or a table that doubled).
func TestReconcileJobMaintains(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	ctx := context.Background()
	var before time.Time
	require.NoError(t, an.QueryRow(ctx,
		"DELETE FROM pipeline.index_builds WHERE index_name = 'agg.key_months_pkey' RETURNING built_at").Scan(&before))

	c := riverClient(t, p, time.Hour)
	events, cancel := c.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	_, err := c.Insert(ctx, jobs.ReconcileArgs{}, nil)
	require.NoError(t, err)
	waitFor(t, events, "reconcile", func(*river.Event) bool { return true })

	var after time.Time
	require.NoError(t, an.QueryRow(ctx,
		"SELECT built_at FROM pipeline.index_builds WHERE index_name = 'agg.key_months_pkey'").Scan(&after))
	require.True(t, after.After(before), "rebuilt by the reconcile job")
}

// TestScheduledReconcileSkipsRecent: every start of a worker schedules a reconciliation, which
// reads the whole source; after a restart it is skipped while the last one ran within half
// the interval. Older, it runs; one not scheduled always runs.
func TestScheduledReconcileSkipsRecent(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	ctx := context.Background()
	setLast := func(ago time.Duration) time.Time {
		at := time.Now().Add(-ago).Truncate(time.Microsecond)
		_, err := an.Exec(ctx, "UPDATE pipeline.settings SET last_reconcile_at = $1", at)
		require.NoError(t, err)
		return at
	}
	last := func() time.Time {
		var at time.Time
		require.NoError(t, an.QueryRow(ctx, "SELECT last_reconcile_at FROM pipeline.settings").Scan(&at))
		return at
	}
	recent := setLast(20 * time.Minute)

	c := riverClient(t, p, time.Hour) // reconciliation every hour
	events, cancel := c.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	waitFor(t, events, "reconcile", func(*river.Event) bool { return true })
	require.True(t, last().Equal(recent), "the start's reconciliation is skipped")

	for _, run := range []struct {
		args jobs.ReconcileArgs
		ago  time.Duration
	}{{jobs.ReconcileArgs{Scheduled: true}, 40 * time.Minute}, {jobs.ReconcileArgs{}, time.Minute}} {
		before := setLast(run.ago)
		_, err := c.Insert(ctx, run.args, nil)
		require.NoError(t, err)
		waitFor(t, events, "reconcile", func(*river.Event) bool { return true })
		require.True(t, last().After(before), "%+v, last %s ago: runs", run.args, run.ago)
	}
}
