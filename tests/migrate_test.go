package tests

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
)

// TestDimCodesMigration brings a version-10 database (agg.dim_stats's dimension, grain and
// status as names) to migration 011 (one-byte codes): every breakdown row comes back with the
// codes the refresh writes, the table is vacuumed and analyzed afterwards (the rewrite drops the
// changed columns' statistics), and the API reads the same breakdown as before.
func TestDimCodesMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := dbtest.Clone(t, template)
	an := dbtest.Pool(t, p.AnalyticsURL())
	rows := func() (n int64, digest string) {
		t.Helper()
		require.NoError(t, an.QueryRow(ctx, `
			SELECT count(*), md5(string_agg(format('%s %s %s %s %s %s %s %s %s', merchant_id, dimension, grain, status,
			                                      period_start, key, orders, gmv_cents, delivery_us), ',' ORDER BY
			                                merchant_id, dimension, grain, status, period_start, key))
			FROM agg.dim_stats`).Scan(&n, &digest))
		return n, digest
	}
	wantRows, want := rows()
	require.Greater(t, wantRows, int64(10000))
	api := newAPI(t, p)
	breakdown := func() string {
		t.Helper()
		res, err := api.client.GetBreakdownWithResponse(ctx, "product",
			&gen.GetBreakdownParams{From: day("2025-01-01"), To: day("2025-12-31")}, bearer(token(t, 1, auth.RoleMerchant)))
		require.NoError(t, err)
		require.Equal(t, 200, res.StatusCode(), string(res.Body))
		return string(res.Body)
	}
	before := breakdown()

	v10, err := os.ReadFile("testdata/dim_stats_v10.sql")
	require.NoError(t, err)
	_, err = an.Exec(ctx, string(v10))
	require.NoError(t, err)
	var text int
	require.NoError(t, an.QueryRow(ctx, `SELECT count(*) FROM agg.dim_stats WHERE dimension = 'product' AND grain = 'quarter' AND status = 'all'`).Scan(&text))
	require.Positive(t, text, "the fixture stored names")

	require.NoError(t, dbtest.Migrate(ctx, p))
	gotRows, got := rows()
	require.Equal(t, wantRows, gotRows)
	require.Equal(t, want, got, "the same rows, with the codes the refresh writes")
	var stats int
	require.NoError(t, an.QueryRow(ctx, `
		SELECT count(*) FROM pg_stats
		WHERE schemaname = 'agg' AND tablename = 'dim_stats' AND attname IN ('dimension', 'grain', 'status')`).Scan(&stats))
	require.Equal(t, 3, stats, "the rewritten columns analyzed")
	require.Equal(t, before, breakdown())
}
