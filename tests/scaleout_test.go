package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/dbtest"
)

// TestTwoWorkersTwoServers runs the deployment the README describes for scale: two `worker`
// and two `serve` processes on one analytics database, the second API reading through its own
// URL (a replica's, here the primary under another application_name). Rounds of changes to
// every merchant are all refreshed, by both workers, without a failed attempt (no deadlock,
// no lock timeout), and both APIs are exact for every merchant.
func TestTwoWorkersTwoServers(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
	ctx := context.Background()
	bin := binary(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AGG_TIMEZONE=" + dbtest.Timezone,
		"ANALYTICS_DATABASE_URL=" + p.AnalyticsURL(), "JWT_SECRET=" + string(secret),
		"REFRESH_INTERVAL=1s", "RECONCILE_INTERVAL=1h", "WORKER_CONCURRENCY=1"}
	readURL, err := url.Parse(p.AnalyticsURL())
	require.NoError(t, err)
	q := readURL.Query()
	q.Set("application_name", "merchantagg_read")
	readURL.RawQuery = q.Encode()

	start := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, extra[0])
		cmd.Env = append(append([]string{}, env...), extra[1:]...)
		var logs bytes.Buffer
		cmd.Stderr = &logs
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd, &logs
	}
	metricsAddr := freePort(t)
	w1, logs1 := start("worker", "METRICS_ADDR="+metricsAddr)
	w2, logs2 := start("worker")
	addr1, addr2 := freePort(t), freePort(t)
	start("serve", "HTTP_ADDR="+addr1)
	start("serve", "HTTP_ADDR="+addr2, "ANALYTICS_READ_DATABASE_URL="+readURL.String())

	const merchants = 12
	for round := range 3 {
		for m := int64(1); m <= merchants; m++ {
			changeSource(t, src, m)
		}
		if round < 2 {
			time.Sleep(1500 * time.Millisecond) // changes land while refreshes run
		}
	}
	var changedAt time.Time
	require.NoError(t, src.QueryRow(ctx, "SELECT max(updated_at) FROM orders").Scan(&changedAt))

	// Settled: the watermark is past the last change, nothing is dirty or queued.
	for begin := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		require.Less(t, time.Since(begin), 120*time.Second, "did not settle:\n%s\n%s", logs1.String(), logs2.String())
		var settled bool
		require.NoError(t, an.QueryRow(ctx, `
			SELECT (SELECT source_watermark > $1 FROM pipeline.settings)
			   AND NOT EXISTS (SELECT FROM refresh.pending)
			   AND NOT EXISTS (SELECT FROM river_job WHERE kind = 'refresh_merchant' AND state NOT IN ('completed', 'discarded', 'cancelled'))`,
			changedAt).Scan(&settled))
		if settled {
			break
		}
	}

	var failures int
	var workers []string
	require.NoError(t, an.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE errors IS NOT NULL),
		       array(SELECT DISTINCT split_part(w, '_', -1) FROM river_job, unnest(attempted_by) w WHERE kind = 'refresh_merchant' ORDER BY 1)
		FROM river_job`).Scan(&failures, &workers))
	require.Zero(t, failures, "no attempt failed (deadlocks, lock waits, duplicates)")
	require.ElementsMatch(t, []string{fmt.Sprint(w1.Process.Pid), fmt.Sprint(w2.Process.Pid)}, workers, "both workers refreshed merchants")

	for _, addr := range []string{addr1, addr2} {
		c, err := gen.NewClientWithResponses("http://" + addr)
		require.NoError(t, err)
		a := &api{url: "http://" + addr, client: c}
		for m := int64(1); m <= merchants; m++ {
			requireExact(t, a, src, m, "2025-05-01", "2025-05-31")
			requireExact(t, a, src, m, "2023-11-01", "2026-10-31")
		}
	}
	var readers int
	require.NoError(t, an.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'merchantagg_read'`,
		p.Analytics).Scan(&readers))
	require.Positive(t, readers, "the second API reads through ANALYTICS_READ_DATABASE_URL")
	require.False(t, strings.Contains(logs1.String()+logs2.String(), `"level":"ERROR"`), "no errors logged")

	// Each process reports its own jobs and requests, and both the pipeline's state.
	for url, want := range map[string]string{
		"http://" + metricsAddr + "/metrics": `merchantagg_job_duration_seconds_count{kind="refresh_merchant",outcome="ok"}`, // it refreshed some (attempted_by)
		"http://" + addr2 + "/metrics":       `merchantagg_http_request_duration_seconds_count{code="200",method="GET",route="/v1/summary"} 24`,
	} {
		res, err := http.Get(url)
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Contains(t, string(body), want)
		require.Contains(t, string(body), "merchantagg_refresh_dirty_days 0")
	}
}
