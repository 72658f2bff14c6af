// Package schema brings the analytics database to the latest version: tern migrations, the
// refresh code package, the fdw server's connection settings and River's tables.
package schema

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
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
