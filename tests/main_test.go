// Package tests holds merchantagg's integration tests: real PostgreSQL databases (a source and
// an analytics database per test package, cloned per test that writes), the real refresh
// procedures over postgres_fdw, River, and the HTTP API through its router and validation.
package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/seed"
)

// template is the package's seeded, migrated and fully refreshed pair. Tests that write clone
// it; nothing connects to it, since a database cannot be cloned while in use.
var template dbtest.Pair

// shared is one clone of the template for the tests that only read.
var shared dbtest.Pair

// seedOpts spans ISO week 2020-W53 and a leap day (2024-02-29), with 12 merchants of very
// different sizes, and ends in the past (a change scan never sees future timestamps).
func seedOpts() seed.Options {
	loc, _ := time.LoadLocation(dbtest.Timezone)
	return seed.Options{
		Merchants: 12, Orders: 60_000, Seed: 7, Location: loc,
		From: time.Date(2020, 12, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC),
	}
}

func TestMain(m *testing.M) {
	ctx := context.Background()
	var err error
	template, err = dbtest.NewTemplate(ctx, "tests", seedOpts())
	if err != nil {
		fmt.Fprintln(os.Stderr, "build test databases:", err)
		os.Exit(1)
	}
	shared, err = dbtest.ClonePair(ctx, template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "clone test databases:", err)
		_ = template.Drop(ctx)
		os.Exit(1)
	}
	code := m.Run()
	if err := errors.Join(shared.Drop(ctx), template.Drop(ctx)); err != nil {
		fmt.Fprintln(os.Stderr, "drop test databases:", err)
	}
	os.Exit(code)
}
