// Package dbtest gives tests their own databases on the real PostgreSQL server: a source and
// an analytics database built once per test package (schema, seed, migrate, full refresh) as
// templates, and cheap clones of that pair (CREATE DATABASE … TEMPLATE) for each test that
// changes data. Names are unique per process, so packages and tests run in parallel.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/refresh"
	"github.com/merchantagg/merchantagg/internal/schema"
	"github.com/merchantagg/merchantagg/internal/seed"
	"github.com/merchantagg/merchantagg/internal/source"
)

// Timezone is the business time zone of every test environment.
const Timezone = "Europe/Moscow"

// ServerURL is the maintenance URL of the test server: TEST_DATABASE_URL, or built from
// PGHOST/PGPORT/PGUSER, defaulting to postgres@127.0.0.1:5432.
func ServerURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	host, port, user := envOr("PGHOST", "127.0.0.1"), envOr("PGPORT", "5432"), envOr("PGUSER", "postgres")
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("postgres://%s@/postgres?host=%s&port=%s", user, url.QueryEscape(host), port)
	}
	return fmt.Sprintf("postgres://%s@%s:%s/postgres", user, host, port)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// URL returns the URL of database name on the test server.
func URL(name string) string {
	u, err := url.Parse(ServerURL())
	if err != nil {
		return ""
	}
	u.Path = "/" + name
	return u.String()
}

// UniqueName returns a database name no other test process uses.
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s_%d_%s", prefix, os.Getpid(), hex.EncodeToString(b))
}

func admin(ctx context.Context, stmt string) error {
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return fmt.Errorf("connect to test server %s: %w", ServerURL(), err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

// CreateDatabase creates name, optionally from a template. Concurrent clones of one template
// can collide ("being accessed by other users") for a moment, so that is retried.
func CreateDatabase(ctx context.Context, name, template string) error {
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		stmt += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	for attempt := 0; ; attempt++ {
		err := admin(ctx, stmt)
		var pgErr *pgconn.PgError
		if err == nil || attempt == 50 || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			if err != nil {
				return fmt.Errorf("create database %s: %w", name, err)
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DropDatabase drops name, disconnecting whoever is still connected.
func DropDatabase(ctx context.Context, name string) error {
	return admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// Pair is a source database and the analytics database that reads it.
type Pair struct {
	Source, Analytics string // database names
}

// SourceURL and AnalyticsURL are the pair's connection URLs.
func (p Pair) SourceURL() string    { return URL(p.Source) }
func (p Pair) AnalyticsURL() string { return URL(p.Analytics) }

// Drop removes both databases.
func (p Pair) Drop(ctx context.Context) error {
	return errors.Join(DropDatabase(ctx, p.Analytics), DropDatabase(ctx, p.Source))
}

// NewTemplate builds a pair from scratch: source schema, seed, analytics migrations and a full
// refresh. Call it once per test package (TestMain); all connections are closed on return so
// the pair can be cloned.
func NewTemplate(ctx context.Context, prefix string, opts seed.Options) (Pair, error) {
	p := Pair{Source: UniqueName(prefix + "_src"), Analytics: UniqueName(prefix + "_agg")}
	if err := CreateDatabase(ctx, p.Source, ""); err != nil {
		return p, err
	}
	if err := CreateDatabase(ctx, p.Analytics, ""); err != nil {
		return p, err
	}
	err := func() error {
		src, err := db.Open(ctx, p.SourceURL())
		if err != nil {
			return err
		}
		defer src.Close()
		if err := source.Init(ctx, src); err != nil {
			return err
		}
		if err := seed.Run(ctx, src, opts); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if err := Migrate(ctx, p); err != nil {
			return err
		}
		an, err := db.Open(ctx, p.AnalyticsURL())
		if err != nil {
			return err
		}
		defer an.Close()
		if _, err := refresh.New(an).RefreshChanged(ctx, nil); err != nil {
			return fmt.Errorf("full refresh: %w", err)
		}
		return nil
	}()
	if err != nil {
		return p, errors.Join(err, p.Drop(ctx))
	}
	return p, nil
}

// Migrate runs `merchantagg migrate` for the pair (again after a clone: it repoints the fdw
// server at the cloned source).
func Migrate(ctx context.Context, p Pair) error {
	an, err := db.Open(ctx, p.AnalyticsURL())
	if err != nil {
		return err
	}
	defer an.Close()
	return schema.Migrate(ctx, an, schema.Options{
		SourceDatabaseURL: p.SourceURL(), Timezone: Timezone, ChangeLookback: 0, ChangeMaxTxnAge: time.Hour,
	})
}

// ClonePair copies a template pair (CREATE DATABASE … TEMPLATE) and repoints the clone's fdw
// server at the cloned source. Nobody may be connected to the template meanwhile.
func ClonePair(ctx context.Context, template Pair) (Pair, error) {
	p := Pair{Source: UniqueName("clone_src"), Analytics: UniqueName("clone_agg")}
	if err := CreateDatabase(ctx, p.Source, template.Source); err != nil {
		return p, err
	}
	if err := CreateDatabase(ctx, p.Analytics, template.Analytics); err != nil {
		return p, errors.Join(err, p.Drop(ctx))
	}
	if err := Migrate(ctx, p); err != nil {
		return p, errors.Join(fmt.Errorf("migrate clone: %w", err), p.Drop(ctx))
	}
	return p, nil
}

// Clone copies the template pair for one test and drops the copy when the test ends.
func Clone(tb testing.TB, template Pair) Pair {
	tb.Helper()
	p, err := ClonePair(context.Background(), template)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Drop(context.Background()); err != nil {
			tb.Logf("drop clone: %v", err)
		}
	})
	return p
}

// Pool opens a pool on url and closes it when the test ends.
func Pool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	pool, err := db.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// APIPool opens a pool running as the API role and closes it when the test ends.
func APIPool(tb testing.TB, url string) *pgxpool.Pool {
	tb.Helper()
	pool, err := db.OpenAPI(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}
