package tests

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/merchantagg/merchantagg/internal/period"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/httpapi"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/stats"
	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

var secret = []byte("integration-test-secret-0123456789")

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

var referenceSQL = sqlfiles.ReferenceQuery("metrics.sql")

// api is a running API server over one analytics database, with a generated client.
type api struct {
	url    string
	client *gen.ClientWithResponses
}

func newAPI(t *testing.T, p dbtest.Pair) *api {
	t.Helper()
	return newAPIWith(t, p, nil)
}

// setUp gives a test its own copy of the template: the pair, pools on its source and
// analytics databases, the API on it and a refresher.
func setUp(t *testing.T) (dbtest.Pair, *pgxpool.Pool, *pgxpool.Pool, *api, *refresh.Refresher) {
	t.Helper()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	return p, dbtest.Pool(t, p.SourceURL()), an, newAPI(t, p), refresh.New(an)
}

// newAPIWith lets a test add the optional parts (admin refresh, River UI, metrics).
func newAPIWith(t *testing.T, p dbtest.Pair, extend func(*httpapi.Options)) *api {
	t.Helper()
	return apiOn(t, p.AnalyticsURL(), extend)
}

// apiOn serves the API reading the analytics database at url.
func apiOn(t *testing.T, url string, extend func(*httpapi.Options)) *api {
	t.Helper()
	reader, err := stats.NewReader(dbtest.APIPool(t, url))
	require.NoError(t, err)
	o := httpapi.Options{
		Reader: reader, Verifier: auth.NewHMAC(secret),
		Ready:  func(context.Context) error { return nil },
		Logger: quiet,
	}
	if extend != nil {
		extend(&o)
	}
	router, err := httpapi.NewRouter(o)
	require.NoError(t, err)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	c, err := gen.NewClientWithResponses(srv.URL)
	require.NoError(t, err)
	return &api{url: srv.URL, client: c}
}

func token(t *testing.T, merchant int64, role auth.Role) string {
	t.Helper()
	s, err := auth.Issue(secret, merchant, role, time.Hour, time.Now())
	require.NoError(t, err)
	return s
}

func bearer(tok string) gen.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

func day(s string) period.DateOnly {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return period.DateOf(t)
}

// reference computes the order metrics of docs/metrics.md on the source for a range, by period of grain ("" = the range).
func reference(t *testing.T, src *pgxpool.Pool, merchant int64, from, to time.Time, statuses []gen.OrderStatus, grain string) map[time.Time]gen.Metrics {
	t.Helper()
	var g *string
	if grain != "" {
		g = &grain
	}
	rows, err := src.Query(context.Background(), referenceSQL, merchant, from, to, statusStrings(statuses), dbtest.Timezone, g)
	require.NoError(t, err)
	defer rows.Close()
	out := map[time.Time]gen.Metrics{}
	for rows.Next() {
		var p time.Time
		var m gen.Metrics
		require.NoError(t, rows.Scan(&p, &m.Orders, &m.Accepted, &m.Delivered, &m.Cancelled, &m.Returned,
			&m.Items, &m.Gmv, &m.ReturnedAmount, &m.Revenue, &m.Aov, &m.CancelRate, &m.ReturnRate, &m.AvgDeliveryHours))
		out[p] = m
	}
	require.NoError(t, rows.Err())
	return out
}

// orZero is the reference's figure for a period, zero when it had no orders.
func orZero(m map[time.Time]gen.Metrics, p time.Time) gen.Metrics {
	if v, ok := m[p]; ok {
		return v
	}
	return stats.Zero()
}

// asSummary is a summary answer without a dimension filter.
func asSummary(t *testing.T, a *gen.SummaryAnswer) gen.Summary {
	t.Helper()
	require.NotNil(t, a)
	s, err := a.AsSummary()
	require.NoError(t, err)
	return s
}

// asTimeseries is a series answer without a dimension filter.
func asTimeseries(t *testing.T, a *gen.TimeseriesAnswer) gen.Timeseries {
	t.Helper()
	require.NotNil(t, a)
	s, err := a.AsTimeseries()
	require.NoError(t, err)
	return s
}
