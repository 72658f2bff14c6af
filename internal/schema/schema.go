// Package schema brings the analytics database to the latest version: tern migrations, the
// refresh code package, the fdw server's connection settings and River's tables.
package schema

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

// VersionTable records which tern migrations have run.
const VersionTable = "public.merchantagg_schema_version"

// Options are the environment-derived settings that migrate writes into the database.
type Options struct {
	SourceDatabaseURL string
	Timezone          string
	ChangeLookback    time.Duration
	ChangeMaxTxnAge   time.Duration
	// Log, when set, is told what a long upgrade will do before it starts.
	Log io.Writer
}

// Migrate is idempotent: running it again changes nothing unless a setting changed.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	src, err := pgx.ParseConfig(opts.SourceDatabaseURL)
	if err != nil {
		return fmt.Errorf("SOURCE_DATABASE_URL: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	if err := announce(ctx, conn.Conn(), opts.Log); err != nil {
		return err
	}
	if err := announceLeafRows(ctx, conn.Conn(), opts.Log); err != nil {
		return err
	}
	if err := migrateTables(ctx, conn.Conn()); err != nil {
		return err
	}
	// River's tables before the code package: its functions read river_job.
	rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	if _, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	if err := installCode(ctx, conn.Conn()); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CALL refresh.configure_source($1, $2, $3, $4, $5)",
		src.Host, strconv.Itoa(int(src.Port)), src.Database, src.User, src.Password); err != nil {
		return fmt.Errorf("configure source server: %w", err)
	}
	if _, err := conn.Exec(ctx, "CALL refresh.configure($1, $2, $3)",
		opts.Timezone, opts.ChangeLookback, opts.ChangeMaxTxnAge); err != nil {
		return fmt.Errorf("configure refresh: %w", err)
	}
	// Aggregates of version 12 are rebuilt from their snapshot (migration 013), one merchant
	// per transaction, with no source read.
	if _, err := conn.Exec(ctx, "CALL refresh.convert_v12()"); err != nil {
		return fmt.Errorf("convert the aggregates of version 12: %w", err)
	}

	return nil
}

// convertRate is how many orders of a version-12 snapshot the conversion to version 13
// rebuilds a second (measured on 2 cores: 1M orders in about 3 minutes).
const convertRate = 5000

// announce tells, before an upgrade across migration 013 starts, how long its conversion will
// take and what it means for a running deployment.
func announce(ctx context.Context, conn *pgx.Conn, log io.Writer) error {
	if log == nil {
		return nil
	}
	var orders *int64
	err := conn.QueryRow(ctx,
		`SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('refresh.order_snapshot')`).Scan(&orders)
	if errors.Is(err, pgx.ErrNoRows) {
		return announceHeads(ctx, conn, log)
	}
	if err != nil {
		return fmt.Errorf("read the aggregates' size: %w", err)
	}
	if orders == nil || *orders <= 0 {
		return announceHeads(ctx, conn, log)
	}
	fmt.Fprintf(log, "migrate: version 13 rebuilds the aggregates of %d orders from their stored snapshot, without "+
		"reading the source: about %s on 2 cores. It goes one merchant per transaction, holding that merchant's "+
		"refresh lock; a merchant's figures are empty until its turn. Stop serve and worker of the older release first: "+
		"they cannot read the new tables.\n", *orders, (time.Duration(*orders/convertRate) * time.Second).Round(time.Second))
	return nil
}

// tileSteps are the migrations that add a column to every stored customer tile in one UPDATE
// (holding agg.customer_tiles locked), with how many tiles a second each does on 2 cores.
var tileSteps = []struct {
	version int
	column  string // the column it adds: absent, the step is still to run
	what    string
	rate    float64
}{
	{16, "events", "adds their own counts to", 8000},
	{18, "head_all", "sums their counts under no status filter for", 20000},
}

// announceHeads tells, before migrations 016 and 018 run on tiles stored by an older release,
// how long they will hold agg.customer_tiles.
func announceHeads(ctx context.Context, conn *pgx.Conn, log io.Writer) error {
	for _, step := range tileSteps {
		var tiles int64
		err := conn.QueryRow(ctx, `SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c
			WHERE c.oid = to_regclass('agg.customer_tiles')
			  AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $1)`, step.column).Scan(&tiles)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && tiles == 0 {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the customer tiles' size: %w", err)
		}
		fmt.Fprintf(log, "migrate: version %d %s %d customer tiles: about %s on 2 cores, "+
			"in one transaction that locks agg.customer_tiles (customer figures and refreshes wait for it).\n",
			step.version, step.what, tiles, time.Duration(float64(tiles)/step.rate*float64(time.Second)).Round(time.Second))
	}
	return nil
}

// leafRowRate is how many agg.key_months rows a second migration 19 goes through on 2 cores.
const leafRowRate = 1000000

// announceLeafRows tells, before migration 19 runs on rows stored by an older release, how long
// it will take and what it holds.
func announceLeafRows(ctx context.Context, conn *pgx.Conn, log io.Writer) error {
	if log == nil {
		return nil
	}
	var rows int64
	err := conn.QueryRow(ctx, `SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c, `+VersionTable+` v
		WHERE c.oid = to_regclass('agg.key_months') AND v.version < 19`).Scan(&rows)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && rows == 0 {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the breakdown rows' size: %w", err)
	}
	fmt.Fprintf(log, "migrate: version 19 deletes the subtree rows of categories without subcategories from the %d rows "+
		"of agg.key_months: about %s on 2 cores, holding the rows it deletes locked (refreshes wait). Stop serve of the "+
		"older release first: it reads those rows for a category filter.\n",
		rows, time.Duration(float64(rows)/leafRowRate*float64(time.Second)).Round(time.Second))
	return nil
}

func migrateTables(ctx context.Context, conn *pgx.Conn) error {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("tern migrator: %w", err)
	}
	fsys, err := fs.Sub(sqlfiles.Migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if err := m.LoadMigrations(fsys); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func installCode(ctx context.Context, conn *pgx.Conn) error {
	fsys, err := fs.Sub(sqlfiles.Code, "code")
	if err != nil {
		return fmt.Errorf("code package: %w", err)
	}
	pkg, err := migrate.LoadCodePackage(fsys)
	if err != nil {
		return fmt.Errorf("load code package: %w", err)
	}
	if err := migrate.InstallCodePackage(ctx, conn, nil, pkg); err != nil {
		return fmt.Errorf("install code package: %w", err)
	}
	return nil
}

// Version is the schema version this binary's migrations bring the analytics database to
// (the number of the last one).
func Version() (int32, error) {
	names, err := fs.Glob(sqlfiles.Migrations, "migrations/*.sql")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var last int32
	for _, n := range names {
		v, err := strconv.Atoi(strings.SplitN(path.Base(n), "_", 2)[0])
		if err != nil {
			return 0, fmt.Errorf("migration %s: not numbered", n)
		}
		last = max(last, int32(v))
	}
	return last, nil
}

// Check refuses a database whose schema is not this binary's: never migrated, older (run
// `merchantagg migrate`), or newer (a rolling upgrade migrated it for a newer binary).
func Check(ctx context.Context, pool *pgxpool.Pool) error {
	want, err := Version()
	if err != nil {
		return err
	}
	var have int32
	err = pool.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&have)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UndefinedTable, errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("the analytics database has no merchantagg schema: run `merchantagg migrate` first")
	case err != nil:
		return fmt.Errorf("read the schema version: %w", err)
	case have < want:
		return fmt.Errorf("the analytics database is at schema version %d, this binary needs %d: run `merchantagg migrate`", have, want)
	case have > want:
		return fmt.Errorf("the analytics database is at schema version %d, newer than this binary's %d: run the release that migrated it", have, want)
	}
	return nil
}
