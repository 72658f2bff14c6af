package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/schema"
)

// buildVersion12 turns p's analytics database into one of the previous release: a new
// database with that release's migrations and code package (testdata/v12, copied from the
// commit it was built from) and a full refresh by its own procedures.
func buildVersion12(t *testing.T, p dbtest.Pair) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, dbtest.DropDatabase(ctx, p.Analytics))
	require.NoError(t, dbtest.CreateDatabase(ctx, p.Analytics, ""))
	an := dbtest.Pool(t, p.AnalyticsURL())
	conn, err := an.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), schema.VersionTable)
	require.NoError(t, err)
	require.NoError(t, m.LoadMigrations(os.DirFS("testdata/v12/migrations")))
	require.NoError(t, m.Migrate(ctx))
	rm, err := rivermigrate.New(riverpgxv5.New(an), nil)
	require.NoError(t, err)
	_, err = rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	pkg, err := migrate.LoadCodePackage(os.DirFS("testdata/v12/code"))
	require.NoError(t, err)
	require.NoError(t, migrate.InstallCodePackage(ctx, conn.Conn(), nil, pkg))
	src, err := pgx.ParseConfig(p.SourceURL())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CALL refresh.configure_source($1, $2, $3, $4, $5)",
		src.Host, strconv.Itoa(int(src.Port)), src.Database, src.User, src.Password)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CALL refresh.configure($1, '0', '1 hour')", dbtest.Timezone)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "SELECT refresh.scan_changes(refresh.source_horizon())")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `DO $$ DECLARE m bigint; d int; l int; BEGIN
		FOR m IN SELECT DISTINCT merchant_id FROM refresh.dirty_days ORDER BY 1 LOOP
			CALL refresh.refresh_dirty(m, NULL, d, l);
		END LOOP; END $$`)
	require.NoError(t, err)
	var version int
	require.NoError(t, conn.QueryRow(ctx, "SELECT max(version) FROM "+schema.VersionTable).Scan(&version))
	require.Equal(t, 12, version)
}

// TestUpgradeFromVersion12: `migrate` converts the previous release's aggregates from their
// order snapshot, without reading the source (its orders are out of reach meanwhile), and the
// API then answers every kind of request exactly.
func TestUpgradeFromVersion12(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := dbtest.Clone(t, template)
	buildVersion12(t, p)
	src := dbtest.Pool(t, p.SourceURL())
	_, err := src.Exec(ctx, `ALTER TABLE orders RENAME TO orders_away`)
	require.NoError(t, err)
	require.NoError(t, dbtest.Migrate(ctx, p))
	_, err = src.Exec(ctx, `ALTER TABLE orders_away RENAME TO orders`)
	require.NoError(t, err)

	an := dbtest.Pool(t, p.AnalyticsURL())
	var left *string
	require.NoError(t, an.QueryRow(ctx, "SELECT to_regclass('pipeline.v12_order_snapshot')::text").Scan(&left))
	require.Nil(t, left, "the old snapshot is dropped once converted")
	a := newAPI(t, p)
	merchants := testMerchants(t, p)
	for i := range 70 {
		c := drawCase(uint64(1000+i), i, merchants)
		t.Run(fmt.Sprintf("%d/%s", i, c), func(t *testing.T) { c.check(t, a, src) })
	}
	require.NoError(t, dbtest.Migrate(ctx, p), "migrate again: nothing left to convert")
}

// TestUpgradeFromVersion15: migration 016 gives the customer tiles that version 15 stored
// (with changes still in their delta arrays) their own counts, 017 sums the catalog copy, 018
// sums the tiles' own counts under no filter, 019 deletes the subtree rows of leaf categories,
// 020 adds the table of pending changes; every kind of request is then exact, and the next
// scan finds no catalog stale.
func TestUpgradeFromVersion15(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := dbtest.Clone(t, template)
	src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
	merchants := testMerchants(t, p)
	for _, m := range merchants[:2] {
		changeSource(t, src, m)
	}
	_, err := refresh.New(an).RefreshChanged(ctx, nil)
	require.NoError(t, err)
	var deltas int
	require.NoError(t, an.QueryRow(ctx, "SELECT count(*) FROM agg.customer_tiles WHERE dck <> '{}'").Scan(&deltas))
	require.NotZero(t, deltas, "tiles with changes not folded in")
	// Version 15's tables: the tiles without their own counts, no catalog sums, no pending
	// changes, and subtree rows for the categories without subcategories (the same figures as
	// their own rows).
	_, err = an.Exec(ctx, `CALL refresh.write_key_pending(NULL)`)
	require.NoError(t, err)
	tag, err := an.Exec(ctx, `INSERT INTO agg.key_months (merchant_id, key, month, dim, ek, v)
		SELECT k.merchant_id, k.key, k.month, 'g', k.ek, k.v FROM agg.key_months k
		WHERE k.dim = 'c' AND NOT EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = k.key)`)
	require.NoError(t, err)
	require.NotZero(t, tag.RowsAffected(), "leaf categories with facts")
	_, err = an.Exec(ctx, `ALTER TABLE agg.customer_tiles DROP COLUMN below, DROP COLUMN events, DROP COLUMN head_all;
		DROP TABLE pipeline.catalog_sums, agg.key_pending;
		UPDATE `+schema.VersionTable+` SET version = 15`)
	require.NoError(t, err)
	require.NoError(t, dbtest.Migrate(ctx, p))
	var leaves int
	require.NoError(t, an.QueryRow(ctx, `SELECT count(*) FROM agg.key_months k
		WHERE k.dim = 'g' AND NOT EXISTS (SELECT FROM ref.categories c WHERE c.parent_id = k.key)`).Scan(&leaves))
	require.Zero(t, leaves, "migration 019 leaves no subtree rows of leaf categories")
	var off int
	require.NoError(t, an.QueryRow(ctx, tileHeadsOff).Scan(&off))
	require.Zero(t, off)
	var stale int
	require.NoError(t, an.QueryRow(ctx, `SELECT refresh.mark_stale_catalogs()`).Scan(&stale))
	require.Zero(t, stale, "catalog sums of version 17 equal the source's")
	a := newAPI(t, p)
	for i := range 40 {
		c := drawCase(uint64(2000+i), i, merchants)
		t.Run(fmt.Sprintf("%d/%s", i, c), func(t *testing.T) { c.check(t, a, src) })
	}
}

// TestCodePackageOwnsItsSchemas: no state object (a table, a default, a policy, a view
// elsewhere) depends on the code package's schemas, so installing it is dropping them whole and
// creating them again; and migrate does exactly that, any number of times.
func TestCodePackageOwnsItsSchemas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	an := dbtest.Pool(t, shared.AnalyticsURL())
	rows, err := an.Query(ctx, `
		WITH code AS (
			SELECT 'pg_proc'::regclass AS classid, oid AS objid FROM pg_proc WHERE pronamespace::regnamespace::text IN ('refresh', 'api')
			UNION ALL SELECT 'pg_class'::regclass, oid FROM pg_class WHERE relnamespace::regnamespace::text IN ('refresh', 'api')
			UNION ALL SELECT 'pg_type'::regclass, oid FROM pg_type WHERE typnamespace::regnamespace::text IN ('refresh', 'api')
		)
		SELECT o.type || ' ' || o.identity
		FROM pg_depend d
		JOIN code c ON d.refclassid = c.classid AND d.refobjid = c.objid
		CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) AS o
		LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
		WHERE coalesce(o.schema, (SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = r.ev_class))
		      NOT IN ('refresh', 'api')`)
	require.NoError(t, err)
	dependents, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, dependents)

	p := dbtest.Clone(t, template)
	require.NoError(t, dbtest.Migrate(ctx, p))
	require.NoError(t, dbtest.Migrate(ctx, p))
}
