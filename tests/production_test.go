package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/httpapi"
	"github.com/merchantagg/merchantagg/internal/jobs"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/schema"
)

// requireProblem checks a problem+json answer: its status, code and Retry-After.
func requireProblem(t *testing.T, status int, body []byte, h http.Header, want int, code string) {
	t.Helper()
	require.Equal(t, want, status, string(body))
	require.Equal(t, "application/problem+json", h.Get("Content-Type"))
	var p struct{ Code string }
	require.NoError(t, json.Unmarshal(body, &p))
	require.Equal(t, code, p.Code)
	require.NotEmpty(t, h.Get("Retry-After"))
}

// TestRateLimitPerMerchant: a merchant past its budget gets 429 with Retry-After while another
// merchant is answered at the same moment; an admin has its own, larger budget; the budget
// refills.
func TestRateLimitPerMerchant(t *testing.T) {
	t.Parallel()
	a := newAPIWith(t, shared, func(o *httpapi.Options) {
		o.Limits = httpapi.Limits{Rate: 2, Burst: 3, AdminRate: 50, AdminBurst: 20}
	})
	const path = "/v1/summary?from=2025-01-01&to=2025-01-31"
	greedy, other, admin := token(t, 3, auth.RoleMerchant), token(t, 4, auth.RoleMerchant), token(t, 0, auth.RoleAdmin)
	for range 3 {
		status, body, _ := getRaw(t, a, path, greedy, nil)
		require.Equal(t, 200, status, string(body))
	}
	status, body, h := getRaw(t, a, path, greedy, nil)
	requireProblem(t, status, body, h, http.StatusTooManyRequests, "rate_limited")
	require.Equal(t, "1", h.Get("Retry-After"))

	status, body, _ = getRaw(t, a, path, other, nil)
	require.Equal(t, 200, status, string(body))
	for range 10 {
		status, body, _ = getRaw(t, a, path+"&merchant_id=3", admin, nil)
		require.Equal(t, 200, status, string(body))
	}

	time.Sleep(600 * time.Millisecond) // at 2 per second, one request's worth
	status, body, _ = getRaw(t, a, path, greedy, nil)
	require.Equal(t, 200, status, string(body))
}

// TestAdmissionShedsOverload: with every slot busy (a read held by a lock), a further request
// is answered 503 overloaded within the admission bound instead of queueing; the held one is
// answered once the lock goes.
func TestAdmissionShedsOverload(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	a := newAPIWith(t, p, func(o *httpapi.Options) {
		o.Limits = httpapi.Limits{InFlight: 1, AdmissionWait: 200 * time.Millisecond}
	})
	release := lockTables(t, an, "agg.freshness")

	tok := token(t, 5, auth.RoleMerchant)
	const path = "/v1/summary?from=2025-01-01&to=2025-01-31"
	var wg sync.WaitGroup
	held := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		status, _, _ := getRaw(t, a, path, tok, nil)
		held <- status
	}()
	waitLocked(t, an)
	start := time.Now()
	status, body, h := getRaw(t, a, path, tok, nil)
	requireProblem(t, status, body, h, http.StatusServiceUnavailable, "overloaded")
	require.Less(t, time.Since(start), 3*time.Second, "shed at the admission bound, not after the statement timeout")

	release()
	wg.Wait()
	require.Equal(t, 200, <-held)
	status, _, _ = getRaw(t, a, path, tok, nil)
	require.Equal(t, 200, status)
}

// waitLocked waits until a session of the API role waits on a lock.
func waitLocked(t *testing.T, an *pgxpool.Pool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(20 * time.Millisecond) {
		var n int
		require.NoError(t, an.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n))
		if n > 0 {
			return
		}
	}
	t.Fatal("no read waits on the lock")
}

// private is an analytics database on a private server of the test, reading a copy of the
// template's source on the shared server, migrated and fully refreshed.
type private struct {
	server *dbtest.Cluster
	src    *pgxpool.Pool
	srcDB  string
	an     *pgxpool.Pool
}

func newPrivate(t *testing.T) private {
	t.Helper()
	ctx := context.Background()
	c := dbtest.NewCluster(t)
	name := dbtest.UniqueName("private_src")
	require.NoError(t, dbtest.CreateDatabase(ctx, name, template.Source))
	t.Cleanup(func() { _ = dbtest.DropDatabase(context.Background(), name) })
	boot := dbtest.Pool(t, c.URL("postgres"))
	_, err := boot.Exec(ctx, "CREATE DATABASE analytics")
	require.NoError(t, err)
	an := dbtest.Pool(t, c.URL("analytics"))
	require.NoError(t, schema.Migrate(ctx, an, schema.Options{
		SourceDatabaseURL: dbtest.URL(name), Timezone: dbtest.Timezone, ChangeMaxTxnAge: time.Hour}))
	start := time.Now()
	_, err = refresh.New(an).RefreshChanged(ctx, nil)
	require.NoError(t, err)
	t.Logf("full refresh on the private server: %s", time.Since(start))
	return private{server: c, src: dbtest.Pool(t, dbtest.URL(name)), srcDB: name, an: an}
}

// readPaths are a request of every kind the API reads with: on a hot standby each must be
// answered, so none of them writes.
var readPaths = []string{
	"/v1/summary?from=2025-01-01&to=2025-06-30",
	"/v1/summary?from=2025-01-01&to=2025-06-30&status=delivered&compare=previous_year",
	"/v1/summary?from=2025-01-01&to=2025-06-30&city_id=1",
	"/v1/timeseries?from=2025-01-01&to=2025-06-30&grain=week",
	"/v1/timeseries?from=2025-01-01&to=2025-06-30&grain=month&format=csv",
	"/v1/breakdown/product?from=2025-01-01&to=2025-06-30&sort=-gmv&page_size=20",
	"/v1/breakdown/category?from=2025-01-01&to=2025-06-30&parent_id=0",
	"/v1/breakdown/region?from=2025-01-01&to=2025-06-30&status=delivered,returned",
	"/v1/abc?from=2025-01-01&to=2025-06-30",
	"/v1/customers?from=2025-01-01&to=2025-06-30&status=delivered",
	"/v1/customers/cohorts?from=2025-01-01&to=2025-06-30",
	"/v1/freshness",
	"/v1/me",
}

// TestStandbyServes: serve reads through a real hot standby (pg_basebackup -R of a private
// primary). Every kind of read is answered there as on the primary, with the standby's
// X-Data-As-Of; after a refresh on the primary, the standby serves the new, exact figures once
// it has replayed them; and the standby refuses a write, so the reads above wrote nothing.
func TestStandbyServes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPrivate(t)
	standby := p.server.Standby()
	onPrimary, onStandby := apiOn(t, p.server.URL("analytics"), nil), apiOn(t, standby.URL("analytics"), nil)
	const m = 6
	tok := token(t, m, auth.RoleMerchant)
	same := func() {
		t.Helper()
		require.NoError(t, p.server.WaitReplayed(ctx, standby))
		for _, path := range readPaths {
			ps, pb, ph := getRaw(t, onPrimary, path, tok, nil)
			ss, sb, sh := getRaw(t, onStandby, path, tok, nil)
			require.Equal(t, 200, ps, path+": "+string(pb))
			require.Equal(t, 200, ss, path+": "+string(sb))
			if path != "/v1/freshness" { // its lag moves with the clock
				require.Equal(t, string(pb), string(sb), path)
			}
			require.Equal(t, ph.Get("X-Data-As-Of"), sh.Get("X-Data-As-Of"), path)
		}
	}
	same()
	_, _, before := getRaw(t, onStandby, readPaths[0], tok, nil)

	changeSource(t, p.src, m)
	r := refresh.New(p.an)
	_, err := r.Scan(ctx)
	require.NoError(t, err)
	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	same()
	_, _, after := getRaw(t, onStandby, readPaths[0], tok, nil)
	require.NotEqual(t, before.Get("X-Data-As-Of"), after.Get("X-Data-As-Of"))
	requireExact(t, onStandby, p.src, m, "2025-05-01", "2025-05-31")

	sp := dbtest.Pool(t, standby.URL("analytics"))
	_, err = sp.Exec(ctx, "CREATE TEMP TABLE probe (x int)")
	require.ErrorContains(t, err, "read-only transaction")
}

// TestAnalyticsOutage stops the analytics server under the API and a worker: requests answer
// 503 problem+json with Retry-After, promptly, and /readyz 503; once the server is back both
// recover without a restart. A refresh job whose database vanished mid-job is retried and
// counts nothing twice.
func TestAnalyticsOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newPrivate(t)
	url := p.server.URL("analytics")
	apiPool := dbtest.APIPool(t, url)
	a := apiOn(t, url, func(o *httpapi.Options) { o.Ready = apiPool.Ping })
	const m = 7
	tok := token(t, m, auth.RoleMerchant)
	ready := func() int {
		res, err := http.Get(a.url + "/readyz")
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	for _, path := range readPaths {
		status, body, _ := getRaw(t, a, path, tok, nil)
		require.Equal(t, 200, status, path+": "+string(body))
	}
	require.Equal(t, 200, ready())

	// A refresh job waits on the source, mid-job, when the server goes away.
	changeSource(t, p.src, m)
	_, err := refresh.New(p.an).Scan(ctx)
	require.NoError(t, err)
	worker, err := jobs.NewClient(jobs.Config{
		Pool: p.an, Refresher: refresh.New(p.an), RefreshInterval: time.Hour, ReconcileInterval: time.Hour,
		Workers: 2, Logger: quiet, RetryPolicy: fastRetry{}, MaxAttempts: 10, JobTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	completed, cancel := worker.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	release := lockTables(t, p.src, "orders")
	require.NoError(t, worker.Start(ctx))
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })
	job, err := worker.Insert(ctx, jobs.RefreshMerchantArgs{MerchantID: m}, nil)
	require.NoError(t, err)
	waitingFdwBackend(t, p.src, p.srcDB)

	p.server.Stop()
	release()
	for _, path := range readPaths {
		start := time.Now()
		status, body, h := getRaw(t, a, path, tok, nil)
		requireProblem(t, status, body, h, http.StatusServiceUnavailable, "unavailable")
		require.Less(t, time.Since(start), 6*time.Second, path)
		require.NotContains(t, string(body), "connect")
	}
	require.Equal(t, 503, ready())

	p.server.Start()
	for _, path := range readPaths {
		status, body, _ := getRaw(t, a, path, tok, nil)
		require.Equal(t, 200, status, path+": "+string(body))
	}
	require.Equal(t, 200, ready())
	done := waitForWithin(t, completed, "refresh_merchant", 150*time.Second, func(e *river.Event) bool { return e.Job.ID == job.Job.ID })
	require.GreaterOrEqual(t, done.Job.Attempt, 2, "the attempt the outage broke is retried")
	require.Zero(t, dirtyDays(t, p.an, m))
	requireExact(t, a, p.src, m, "2025-05-01", "2025-05-31")
}

// TestAPIPoolFollowsCores: the API reads on about two connections per core (at least 4), and
// pool_max_conns in the URL wins.
func TestAPIPoolFollowsCores(t *testing.T) {
	t.Parallel()
	pool := dbtest.APIPool(t, template.AnalyticsURL())
	require.Equal(t, int32(max(4, 2*runtime.NumCPU())), pool.Config().MaxConns)
	require.Equal(t, int32(3), dbtest.APIPool(t, template.AnalyticsURL()+"?pool_max_conns=3").Config().MaxConns)
}
