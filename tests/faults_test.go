package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"riverqueue.com/riverui"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/httpapi"
	"github.com/merchantagg/merchantagg/internal/jobs"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// lockTables takes an ACCESS EXCLUSIVE lock on tables (schema.name or name) of db until the
// returned func runs, or the test ends: a refresh or a read reaching them waits, mid-statement,
// for as long as the test wants.
func lockTables(t *testing.T, db *pgxpool.Pool, tables ...string) (release func()) {
	t.Helper()
	ctx := context.Background()
	names := make([]string, len(tables))
	for i, table := range tables {
		names[i] = pgx.Identifier(strings.Split(table, ".")).Sanitize()
	}
	tx, err := db.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	done := false
	release = func() {
		if !done {
			done = true
			require.NoError(t, tx.Rollback(ctx))
		}
	}
	t.Cleanup(release)
	return release
}

// waitingFdwBackend returns the pid of the postgres_fdw session blocked on a lock in the
// source database, once there is one.
func waitingFdwBackend(t *testing.T, src *pgxpool.Pool, srcDB string) int {
	t.Helper()
	for start := time.Now(); time.Since(start) < 60*time.Second; time.Sleep(50 * time.Millisecond) {
		var pid int
		err := src.QueryRow(context.Background(), `
			SELECT pid FROM pg_stat_activity
			WHERE datname = $1 AND application_name = 'postgres_fdw' AND wait_event_type = 'Lock'
			LIMIT 1`, srcDB).Scan(&pid)
		if err == nil {
			return pid
		}
		require.ErrorIs(t, err, pgx.ErrNoRows)
	}
	t.Fatal("no refresh waiting on the source")
	return 0
}

// TestSourceTerminatedMidRefresh kills the refresh's source session while the refresh has
// already rewritten part of the merchant's rows: the job fails, the old figures stay visible,
// the retry succeeds once the source is healthy, and the API is exact.
func TestSourceTerminatedMidRefresh(t *testing.T) {
	t.Parallel()
	p, src, an, a, _ := setUp(t)
	ctx := context.Background()
	const m = 10
	before, old := snapshot(t, an), summaryOf(t, a, m, "2025-05-01", "2025-05-31")
	changeSource(t, src, m)
	_, err := refresh.New(an).Scan(ctx)
	require.NoError(t, err)
	release := lockTables(t, src, "products") // read after the order figures are rewritten

	c := riverClientWith(t, p, func(c *jobs.Config) { c.RetryPolicy, c.MaxAttempts = fastRetry{}, 5 })
	events, cancel := c.Subscribe(river.EventKindJobFailed, river.EventKindJobCompleted)
	defer cancel()
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	res, err := c.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: m}, nil)
	require.NoError(t, err)

	var killed bool
	require.NoError(t, src.QueryRow(ctx, "SELECT pg_terminate_backend($1)", waitingFdwBackend(t, src, p.Source)).Scan(&killed))
	require.True(t, killed)
	failed := waitFor(t, events, "refresh_merchant", func(e *river.Event) bool { return e.Kind == river.EventKindJobFailed })
	require.Equal(t, res.Job.ID, failed.Job.ID)
	require.Equal(t, 1, failed.Job.Attempt)
	require.Equal(t, before, snapshot(t, an), "the failed attempt left no trace")
	require.Equal(t, old, summaryOf(t, a, m, "2025-05-01", "2025-05-31"))
	require.Positive(t, dirtyDays(t, an, m))

	release()
	done := waitFor(t, events, "refresh_merchant", func(e *river.Event) bool {
		return e.Kind == river.EventKindJobCompleted && e.Job.ID == res.Job.ID
	})
	require.GreaterOrEqual(t, done.Job.Attempt, 2)
	requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
	requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
	require.Zero(t, dirtyDays(t, an, m))
}

// riverUI builds River UI on a client, as serve mounts it.
func riverUI(t *testing.T, c *river.Client[pgx.Tx]) http.Handler {
	t.Helper()
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(c, nil), Logger: quiet, Prefix: "/riverui"})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, ui.Start(ctx))
	return ui
}

// TestTimeoutIsBoundedThenRequeuedFromRiverUI: a refresh that cannot finish within the
// statement timeout fails on every attempt (each in smaller pieces), is discarded after
// MaxAttempts rather than looping, keeps its dirty days and the old figures, and is not
// enqueued again by the periodic jobs. An operator retries it through River UI's API and,
// with the cause fixed, it completes.
func TestTimeoutIsBoundedThenRequeuedFromRiverUI(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
	ctx := context.Background()
	const m = 11
	changeSource(t, src, m)
	_, err := refresh.New(an).Scan(ctx)
	require.NoError(t, err)
	pending := dirtyDays(t, an, m)
	require.Positive(t, pending)
	before := snapshot(t, an)

	slow := riverClientWith(t, p, func(c *jobs.Config) {
		c.Refresher.StatementTimeout = time.Millisecond // nothing finishes: a merchant too big for it
		c.RetryPolicy, c.MaxAttempts = fastRetry{}, 3
	})
	events, cancel := slow.Subscribe(river.EventKindJobFailed)
	defer cancel()
	require.NoError(t, slow.Start(ctx))
	res, err := slow.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: m}, nil)
	require.NoError(t, err)
	gone := waitFor(t, events, "refresh_merchant", func(e *river.Event) bool {
		return e.Job.ID == res.Job.ID && e.Job.State == rivertype.JobStateDiscarded
	})
	require.NoError(t, slow.Stop(ctx))
	require.Equal(t, 3, gone.Job.Attempt)
	require.Len(t, gone.Job.Errors, 3)
	for _, e := range gone.Job.Errors {
		require.Contains(t, e.Error, "statement timeout")
	}
	require.Equal(t, pending, dirtyDays(t, an, m), "the work is not lost")
	require.Equal(t, before, snapshot(t, an))

	// The cause is fixed (a healthy worker), but a discarded job stays parked: the periodic
	// scan does not enqueue the merchant again, or a hopeless one would loop forever.
	healthy := riverClientWith(t, p, nil)
	completed, cancel2 := healthy.Subscribe(river.EventKindJobCompleted)
	defer cancel2()
	require.NoError(t, healthy.Start(ctx))
	t.Cleanup(func() { _ = healthy.Stop(context.Background()) })
	waitFor(t, completed, "scan_changes", func(*river.Event) bool { return true })
	waitFor(t, completed, "reconcile", func(*river.Event) bool { return true })
	var queued, parked int
	require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM river_job WHERE kind = 'refresh_merchant' AND id > $1", res.Job.ID).Scan(&queued))
	require.Zero(t, queued)
	require.NoError(t, an.QueryRow(ctx, "SELECT parked_merchants FROM refresh.pipeline_status()").Scan(&parked))
	require.Equal(t, 1, parked)
	require.Equal(t, pending, dirtyDays(t, an, m))

	a := newAPIWith(t, p, func(o *httpapi.Options) { o.RiverUI = riverUI(t, healthy) })
	body := fmt.Sprintf(`{"ids":["%d"]}`, res.Job.ID)
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {token(t, m, auth.RoleMerchant), 403}, {token(t, 0, auth.RoleAdmin), 200}} {
		req, err := http.NewRequest(http.MethodPost, a.url+"/riverui/api/jobs/retry", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		out, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		out.Body.Close()
		require.Equal(t, tc.want, out.StatusCode)
	}
	done := waitFor(t, completed, "refresh_merchant", func(e *river.Event) bool { return e.Job.ID == res.Job.ID })
	require.Equal(t, 4, done.Job.Attempt, "River UI's retry adds an attempt")
	require.Zero(t, dirtyDays(t, an, m))
	requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
}

// TestKilledWorkerIsRescued SIGKILLs a worker process while its refresh job runs (inside
// the job's transaction, waiting for the merchant's refresh lock). The job
// stays `running` with no one working it; another worker's rescuer hands it back after the
// job timeout, runs it, and the figures are exact: the killed attempt's transaction was
// rolled back by the server, so nothing is counted twice.
func TestKilledWorkerIsRescued(t *testing.T) {
	t.Parallel()
	p, src, an, a, _ := setUp(t)
	ctx := context.Background()
	const m = 12
	changeSource(t, src, m)
	// The merchant's refresh lock (the worker's start-up scan reads the source's catalog, so a
	// source lock would stop the scan rather than the refresh).
	lock, err := an.Acquire(ctx)
	require.NoError(t, err)
	defer lock.Release()
	_, err = lock.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('merchantagg.refresh', $1))", int64(m))
	require.NoError(t, err)
	release := func() {
		_, err := lock.Exec(ctx, "SELECT pg_advisory_unlock_all()")
		require.NoError(t, err)
	}

	bin := binary(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AGG_TIMEZONE=" + dbtest.Timezone,
		"ANALYTICS_DATABASE_URL=" + p.AnalyticsURL(), "REFRESH_INTERVAL=1h", "RECONCILE_INTERVAL=1h",
		"REFRESH_JOB_TIMEOUT=3s", "WORKER_CONCURRENCY=1"}
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "worker")
		cmd.Env = env
		var logs bytes.Buffer
		cmd.Stderr = &logs
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd, &logs
	}
	first, logs := start() // its change scan at start enqueues the merchant's job
	var id int64
	var by []string
	for begin := time.Now(); id == 0; time.Sleep(50 * time.Millisecond) {
		require.Less(t, time.Since(begin), 60*time.Second, "no refresh waiting: %s", logs.String())
		err := an.QueryRow(ctx, `SELECT id, attempted_by FROM river_job
			WHERE kind = 'refresh_merchant' AND state = 'running'
			  AND EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory')`).Scan(&id, &by)
		if err != nil {
			require.ErrorIs(t, err, pgx.ErrNoRows)
		}
	}
	require.NoError(t, first.Process.Kill())
	_, _ = first.Process.Wait()
	release()

	second, logs2 := start()
	var state string
	for begin := time.Now(); state != "completed"; time.Sleep(200 * time.Millisecond) {
		require.Less(t, time.Since(begin), 100*time.Second, "never rescued: %s", logs2.String())
		require.NoError(t, an.QueryRow(ctx, "SELECT state, attempted_by FROM river_job WHERE id = $1", id).Scan(&state, &by))
	}
	require.Len(t, by, 2, "two workers attempted it")
	require.Contains(t, by[1], fmt.Sprintf("_%d", second.Process.Pid))
	require.NotEqual(t, by[0], by[1])
	requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
	requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
}
