package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/dbtest"
)

// TestSmoke runs the whole benchmark at a tiny scale, so `make bench` cannot rot: every phase
// runs against real processes and databases, and the report is written.
func TestSmoke(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "merchantagg")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/merchantagg").CombinedOutput()
	require.NoError(t, err, string(out))
	o := Options{
		Orders: 4000, Merchants: 6, Seed: 3, Bin: bin, Rates: []int{20, 50}, Duration: time.Second,
		BaselineRequests: 12, BaselineConcurrency: 2, BaselineBudget: 20 * time.Second, EndpointRequests: 2,
		Changes: []int{20, 100}, IncrementalRuns: 2, RefreshInterval: time.Second, Timezone: "Europe/Moscow",
		SourceDB: dbtest.UniqueName("bench_src"), AnalyticsDB: dbtest.UniqueName("bench_agg"),
		OutDir: t.TempDir(), Log: &bytes.Buffer{}, RollupYears: 3, LargeSellerOrders: 3000,
	}
	t.Cleanup(func() {
		for _, name := range []string{o.AnalyticsDB, o.SourceDB, o.AnalyticsDB + "_large", o.SourceDB + "_large"} {
			_ = dbtest.DropDatabase(context.Background(), name)
		}
	})
	r, err := Run(ctx, o)
	require.NoError(t, err, o.Log.(*bytes.Buffer).String())

	require.Equal(t, 6, r.Merchants)
	require.Positive(t, r.Largest.Orders)
	require.Contains(t, r.Server, "shared_buffers")
	require.Positive(t, r.GroupBySeconds)
	require.Positive(t, r.BackfillRatio)
	require.Positive(t, r.RefreshPeakRSSMiB)
	require.Len(t, r.Incremental, 2)
	require.Positive(t, r.Incremental[1].Changed) // at most 100: a tiny source has few recent orders
	for _, inc := range r.Incremental {
		require.Len(t, inc.Runs, 2)
		require.Equal(t, (inc.Runs[0]+inc.Runs[1])/2, inc.Seconds, "the median of the runs")
	}
	require.Len(t, r.Load, 3)
	for _, l := range r.Load {
		require.Zero(t, l.Errors, l.Name)
		require.Positive(t, l.Requests, l.Name)
		require.LessOrEqual(t, l.P50ms, l.P99ms)
	}
	require.Equal(t, 12, r.Baseline.Requests)
	require.Len(t, r.Endpoints, len(endpointRequests))
	for _, e := range r.Endpoints {
		require.Zero(t, e.Errors, e.Request)
		require.Positive(t, e.RandomP50ms, e.Request)
		require.LessOrEqual(t, e.RandomP50ms, e.RandomP99ms, e.Request)
	}
	require.Positive(t, r.Baseline.RatioP50)
	require.Positive(t, r.ServeRSSMiB)
	require.Positive(t, r.FreshnessSeconds)
	require.NotNil(t, r.IncrementalYear)
	require.Positive(t, r.IncrementalYear.Changed)
	require.NotNil(t, r.Dashboard)
	require.Positive(t, r.Dashboard.RandomP50ms)
	require.Zero(t, r.Dashboard.Errors)
	require.NotNil(t, r.Catalog)
	require.Positive(t, r.Catalog.ProductLines)
	require.Positive(t, r.Catalog.CityOrders)
	require.Positive(t, r.Catalog.ParentProducts)
	require.Positive(t, r.Catalog.ParentSeconds)
	require.NotNil(t, r.Store)
	require.Positive(t, r.Store.SourceMB)
	require.Equal(t, "agg.key_months", r.Store.Tables[0].Table, "the running sums are the largest table")
	require.NotNil(t, r.Rollup)
	require.Positive(t, r.Rollup.Rows)
	require.Positive(t, r.Rollup.ABCms)
	require.Positive(t, r.Rollup.RollupABCms)
	require.NotNil(t, r.LargeSeller)
	require.Equal(t, int64(3000), r.LargeSeller.Orders)
	require.Positive(t, r.LargeSeller.ABCms)

	// A reused database is vacuumed of earlier runs' dead rows first (-skip-backfill, a
	// reused source).
	log := &bytes.Buffer{}
	require.NoError(t, vacuum(ctx, dbtestURL(o.AnalyticsDB), &stage{log: log, start: time.Now()}))
	require.Contains(t, log.String(), "vacuumed the reused database")

	require.NoError(t, Report(o.OutDir, r))
	md, err := os.ReadFile(filepath.Join(o.OutDir, "BENCHMARKS.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "### 4k orders")
	require.Contains(t, string(md), "Server: PostgreSQL 15")
	require.Contains(t, string(md), "| mix | 50/s |")
	require.Contains(t, string(md), "median of 2 |")
	require.Regexp(t, "\\| `/v1/abc` \\| [0-9.]+ / [0-9.]+ \\|", string(md))
	require.Contains(t, string(md), "| `agg.key_months` |")
	require.Contains(t, string(md), "afternoon rollup")
	require.Contains(t, string(md), "large seller")
	png, err := os.ReadFile(filepath.Join(o.OutDir, "bench", "latency.png"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")))

	// A second report keeps the prose around the generated part.
	path := filepath.Join(o.OutDir, "BENCHMARKS.md")
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(md), "# Benchmarks", "# Benchmarks\n\nHand-written notes.", 1)), 0o644))
	require.NoError(t, Report(o.OutDir, r))
	md, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(md), "Hand-written notes.")
	require.Equal(t, 1, strings.Count(string(md), beginMarker))
}

// TestSoakJoinsSavedResult: a soak-only run adds its soak to the saved full result of its size
// instead of replacing it, and the report renders it.
func TestSoakJoinsSavedResult(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	full := Result{Orders: 1000, Merchants: 2, Endpoints: []Endpoint{{Request: "/v1/summary", Count: 1, P50ms: 1, P99ms: 2}},
		Load: []Load{{Name: "mix", Rate: 50, Requests: 1, P50ms: 1, P95ms: 2, P99ms: 3, MaxMs: 4}}}
	require.NoError(t, save(dir, full))
	soak := Result{Orders: 1000, soakOnly: true, Soak: &Soak{Rate: 100, Seconds: 120, Minutes: []SoakMinute{{Requests: 6000, P99ms: 9}, {Requests: 6000, P99ms: 8}}}}
	require.NoError(t, Report(dir, soak))
	all, err := loadResults(filepath.Join(dir, "bench", "results"))
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, 2, all[0].Merchants, "the full result stays")
	require.NotNil(t, all[0].Soak)
	md, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "| soak minute |")
	require.Contains(t, string(md), "`/v1/summary`")
}

// TestReusedDatabaseKeepsItsBackfill: a run on a reused analytics database (-skip-backfill)
// replaces the saved result but keeps the backfill figures of the run that built it.
func TestReusedDatabaseKeepsItsBackfill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	built := time.Date(2026, 12, 2, 19, 19, 0, 0, time.UTC)
	require.NoError(t, save(dir, Result{Date: built, Orders: 1000, Merchants: 2, GroupBySeconds: 2, BackfillSeconds: 300,
		BackfillRatio: 150}))
	require.NoError(t, Report(dir, Result{Date: built.Add(time.Hour), Orders: 1000, Merchants: 3, backfillReused: true,
		Load: []Load{{Name: "mix", Rate: 50, Requests: 1, P50ms: 1, P95ms: 2, P99ms: 3, MaxMs: 4}}}))
	all, err := loadResults(filepath.Join(dir, "bench", "results"))
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, 3, all[0].Merchants, "the new run replaces the saved one")
	require.Equal(t, 300.0, all[0].BackfillSeconds)
	require.Equal(t, built, all[0].BackfillDate.UTC())
	md, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	require.NoError(t, err)
	require.Contains(t, string(md), "the run of 2026-12-02 19:19, whose database this one reused")
}

// TestSourceIsReusedOnlyForItsShape: a source holding the orders asked for is reused only when
// it was seeded with the same merchants, seed and catalog cap.
func TestSourceIsReusedOnlyForItsShape(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := Options{Orders: 1500, Merchants: 3, Seed: 5, SourceDB: dbtest.UniqueName("bench_shape")}
	t.Cleanup(func() { _ = dbtest.DropDatabase(context.Background(), o.SourceDB) })
	st := &stage{log: &bytes.Buffer{}, start: time.Now()}
	seeded := func(o Options) bool {
		s, err := prepareSource(ctx, o, dbtest.URL(o.SourceDB), time.UTC, st)
		require.NoError(t, err, st.log.(*bytes.Buffer).String())
		return s > 0
	}
	require.True(t, seeded(o), "a new source")
	require.False(t, seeded(o), "the same shape: reused")
	more := o
	more.Merchants = 4
	require.True(t, seeded(more), "as many orders of more merchants: seeded again")
	other := more
	other.Seed = 6
	require.True(t, seeded(other), "another seed: seeded again")
	require.False(t, seeded(other))
}
