// Package source creates the source (marketplace) schema of docs/metrics.md (The source data) for demos, tests and
// benchmarks. merchantagg never writes to a real source database.
package source

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

// Init creates the tables and the indexes the refresh relies on; it is idempotent.
func Init(ctx context.Context, pool *pgxpool.Pool) error {
	for _, name := range []string{"source/schema.sql", "source/indexes.sql"} {
		body, err := sqlfiles.Source.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if _, err := pool.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("apply %s: %w", name, err)
		}
	}
	return nil
}
