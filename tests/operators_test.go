package tests

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/httpapi"
	"github.com/merchantagg/merchantagg/internal/jobs"
	"github.com/merchantagg/merchantagg/internal/metrics"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// freshness asks the API for a merchant's freshness.
func freshness(t *testing.T, a *api, m int64) gen.Freshness {
	t.Helper()
	res, err := a.client.GetFreshnessWithResponse(context.Background(), &gen.GetFreshnessParams{}, bearer(token(t, m, auth.RoleMerchant)))
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode(), string(res.Body))
	return *res.JSON200
}

// asOf is the X-Data-As-Of header of a merchant's summary.
func asOf(t *testing.T, a *api, m int64) time.Time {
	t.Helper()
	res, err := a.client.GetSummary(context.Background(), &gen.GetSummaryParams{From: day("2025-05-01"), To: day("2025-05-31")},
		bearer(token(t, m, auth.RoleMerchant)))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	at, err := time.Parse(time.RFC3339Nano, res.Header.Get("X-Data-As-Of"))
	require.NoError(t, err, "X-Data-As-Of: %q", res.Header.Get("X-Data-As-Of"))
	return at
}

// TestFreshnessFollowsTheRefresh: a merchant's as-of time (header and /v1/freshness) stays at
// what its figures cover while a change waits, and moves on when the refresh shows it.
func TestFreshnessFollowsTheRefresh(t *testing.T) {
	t.Parallel()
	_, src, _, a, r := setUp(t)
	ctx := context.Background()
	const m, other = 5, 6

	f := freshness(t, a, m)
	require.Equal(t, int64(m), f.MerchantId)
	require.NotNil(t, f.RefreshedAt)
	require.NotNil(t, f.SourceWatermark)
	require.NotNil(t, f.LastScanAt)
	require.Zero(t, f.PendingDays)
	require.GreaterOrEqual(t, *f.LagSeconds, 0.0)
	covered := *f.SourceWatermark
	require.True(t, asOf(t, a, m).Equal(covered), "the header tells what /v1/freshness does")

	changeSource(t, src, m)
	_, err := r.Scan(ctx)
	require.NoError(t, err)
	waiting := freshness(t, a, m)
	require.Positive(t, waiting.PendingDays)
	require.True(t, waiting.SourceWatermark.Equal(covered), "its figures still cover only what they did")
	require.True(t, asOf(t, a, m).Equal(covered))
	require.True(t, freshness(t, a, other).SourceWatermark.After(covered), "a merchant without changes is current")

	_, err = r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	done := freshness(t, a, m)
	require.Zero(t, done.PendingDays)
	require.True(t, done.SourceWatermark.After(covered))
	require.True(t, done.RefreshedAt.After(*f.RefreshedAt))
	require.True(t, asOf(t, a, m).Equal(*done.SourceWatermark))

	// Who may ask: an admin names the merchant, a merchant only itself.
	res, err := a.client.GetFreshnessWithResponse(ctx, &gen.GetFreshnessParams{MerchantId: ptr(int64(other))}, bearer(token(t, m, auth.RoleMerchant)))
	require.NoError(t, err)
	require.Equal(t, 403, res.StatusCode())
	res, err = a.client.GetFreshnessWithResponse(ctx, &gen.GetFreshnessParams{}, bearer(token(t, 0, auth.RoleAdmin)))
	require.NoError(t, err)
	require.Equal(t, 400, res.StatusCode())
	res, err = a.client.GetFreshnessWithResponse(ctx, &gen.GetFreshnessParams{MerchantId: ptr(int64(other))}, bearer(token(t, 0, auth.RoleAdmin)))
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode())
	require.Equal(t, int64(other), res.JSON200.MerchantId)
}

// TestAdminRefreshAndMetrics: POST /v1/admin/refresh queues a backfill that a worker runs;
// only admins may; /metrics shows request latencies by route and the refresh pipeline.
func TestAdminRefreshAndMetrics(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
	ctx := context.Background()
	m := metrics.New()
	m.WatchPipeline(an, quiet)
	worker := riverClientWith(t, p, func(c *jobs.Config) { c.Metrics = m })
	a := newAPIWith(t, p, func(o *httpapi.Options) {
		o.Metrics = m
		o.RiverUI = riverUI(t, worker)
		o.Backfill = jobs.Backfiller{Client: worker, Refresher: refresh.New(an)}
	})
	const merchant = 3
	driftSource(t, src, merchant) // invisible to the change scan: a backfill is how an operator repairs it

	admin := bearer(token(t, 0, auth.RoleAdmin))
	for _, tc := range []struct {
		body  gen.RefreshRequest
		edit  gen.RequestEditorFn
		want  int
		param string
	}{
		{gen.RefreshRequest{MerchantId: merchant, From: day("2020-12-01"), To: day("2026-10-31")}, bearer(token(t, merchant, auth.RoleMerchant)), 403, ""},
		{gen.RefreshRequest{MerchantId: merchant, From: day("2025-02-01"), To: day("2025-01-01")}, admin, 400, "from"},
		{gen.RefreshRequest{MerchantId: merchant, From: day("1990-01-01"), To: day("2025-01-01")}, admin, 400, "to"},
		{gen.RefreshRequest{MerchantId: 0, From: day("2025-01-01"), To: day("2025-01-01")}, admin, 400, "merchant_id"},
	} {
		res, err := a.client.PostAdminRefreshWithResponse(ctx, tc.body, tc.edit)
		require.NoError(t, err)
		require.Equal(t, tc.want, res.StatusCode(), string(res.Body))
		if tc.param != "" {
			require.Contains(t, string(res.Body), `"param":"`+tc.param+`"`)
		}
	}
	for _, body := range []string{`{"merchant_id": 3}`, `not json`, `{"merchant_id": 3, "from": "2025-01-01", "to": "2025-01-02", "drop": 1}`} {
		req, err := http.NewRequest(http.MethodPost, a.url+"/v1/admin/refresh", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token(t, 0, auth.RoleAdmin))
		out, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		text, _ := io.ReadAll(out.Body)
		out.Body.Close()
		require.Equal(t, 400, out.StatusCode, body)
		require.Contains(t, string(text), `"param":`, body)
	}
	require.Zero(t, dirtyDays(t, an, merchant), "refused requests mark nothing")

	events, cancel := worker.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	periodic, cancel2 := worker.Subscribe(river.EventKindJobCompleted)
	defer cancel2()
	res, err := a.client.PostAdminRefreshWithResponse(ctx, gen.RefreshRequest{MerchantId: merchant, From: day("2020-12-01"), To: day("2026-10-31")}, admin)
	require.NoError(t, err)
	require.Equal(t, 202, res.StatusCode(), string(res.Body))
	require.Equal(t, 2161, res.JSON202.Days)
	require.Equal(t, 2161, dirtyDays(t, an, merchant))
	require.NoError(t, worker.Start(ctx))
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })
	waitFor(t, events, "refresh_merchant", func(e *river.Event) bool { return e.Job.ID == res.JSON202.JobId })
	requireExact(t, a, src, merchant, "2020-12-01", "2023-11-30")
	requireExact(t, a, src, merchant, "2023-12-01", "2026-10-31")
	waitFor(t, periodic, "reconcile", func(*river.Event) bool { return true }) // runs at start, after a scan

	out, err := http.Get(a.url + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(out.Body)
	out.Body.Close()
	require.NoError(t, err)
	text := string(body)
	for _, want := range []string{
		`merchantagg_http_request_duration_seconds_bucket{code="200",method="GET",route="/v1/summary"`,
		`merchantagg_http_request_duration_seconds_bucket{code="202",method="POST",route="/v1/admin/refresh"`,
		`merchantagg_job_duration_seconds_count{kind="refresh_merchant",outcome="ok"}`,
		`merchantagg_job_duration_seconds_count{kind="reconcile",outcome="ok"}`,
		"merchantagg_refresh_watermark_lag_seconds ",
		"merchantagg_refresh_dirty_days ",
		"merchantagg_refresh_oldest_seconds ",
		"merchantagg_reconcile_drifted_months ",
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, "integration-test-secret", "no secrets")
}

// TestRiverUIIsForAdmins: River UI answers admins only; a browser gets in with ?token= once,
// which becomes an HttpOnly cookie and leaves the address bar.
func TestRiverUIIsForAdmins(t *testing.T) {
	t.Parallel()
	c := riverClientWith(t, shared, nil) // not started: the UI reads River's tables only
	var logs syncBuffer
	a := newAPIWith(t, shared, func(o *httpapi.Options) {
		o.RiverUI = riverUI(t, c)
		o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, tok string, cookies ...*http.Cookie) *http.Response {
		req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for _, c := range cookies {
			req.AddCookie(c)
		}
		res, err := noRedirect.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	admin, merchant := token(t, 0, auth.RoleAdmin), token(t, 1, auth.RoleMerchant)
	require.Equal(t, 401, get("/riverui/", "").StatusCode)
	require.Equal(t, 401, get("/riverui/", admin[:len(admin)-3]+"xyz").StatusCode)
	require.Equal(t, 403, get("/riverui/", merchant).StatusCode)
	require.Equal(t, 403, get("/riverui/api/jobs?state=discarded", merchant).StatusCode)
	require.Equal(t, 403, get("/riverui/?token="+merchant, "").StatusCode)
	require.Equal(t, 200, get("/riverui/api/jobs?state=discarded", admin).StatusCode)

	login := get("/riverui/jobs?state=discarded&token="+admin, "")
	require.Equal(t, http.StatusSeeOther, login.StatusCode)
	require.Equal(t, "/riverui/jobs?state=discarded", login.Header.Get("Location"))
	cookies := login.Cookies()
	require.Len(t, cookies, 1)
	require.True(t, cookies[0].HttpOnly)
	require.Equal(t, "/riverui", cookies[0].Path)
	page := get("/riverui/", "", cookies[0])
	require.Equal(t, 200, page.StatusCode)
	require.True(t, strings.HasPrefix(page.Header.Get("Content-Type"), "text/html"))

	// Every request is logged with its id; no token is, wherever it came from.
	text := logs.String()
	require.Contains(t, text, `"request_id":`)
	require.Contains(t, text, `token=REDACTED`)
	require.NotContains(t, text, admin[strings.LastIndex(admin, ".")+1:], "no token signature in the logs")
	require.NotContains(t, text, merchant[strings.LastIndex(merchant, ".")+1:])
}

// syncBuffer is a bytes.Buffer safe for a logger written from server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSlowReadIs503: a read that hits the API's statement timeout (here: waiting on a lock an
// operator holds on an aggregate table) answers 503 problem+json with Retry-After, not a 500.
func TestSlowReadIs503(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	a := newAPI(t, p)
	ctx := context.Background()
	lockTables(t, an, "agg.key_months")

	res, err := a.client.GetSummaryWithResponse(ctx, &gen.GetSummaryParams{From: day("2025-05-01"), To: day("2025-05-31")},
		bearer(token(t, 1, auth.RoleMerchant)))
	require.NoError(t, err)
	require.Equal(t, 503, res.StatusCode(), string(res.Body))
	require.Equal(t, "5", res.HTTPResponse.Header.Get("Retry-After"))
	require.Equal(t, "application/problem+json", res.HTTPResponse.Header.Get("Content-Type"))
	require.Contains(t, string(res.Body), `"code":"timeout"`)
	require.NotContains(t, string(res.Body), "statement")
}
