// Package sql embeds the project's SQL: source schema, analytics migrations, the refresh code
// package and the API's read queries. The .sql files are the source of truth; Go only runs them.
package sql

import "embed"

// Source holds the source (marketplace) schema of docs/metrics.md, for `merchantagg source init`.
//
//go:embed source/*.sql
var Source embed.FS

// Migrations holds the numbered tern migrations of the analytics database.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// Code holds the tern code package (install.sql and the files it includes).
//
//go:embed code/*.sql
var Code embed.FS

// Reference holds the definitions of docs/metrics.md written straight against the source tables, independently of the
// aggregates: the tests' oracle and the benchmark's baseline.
//
//go:embed reference/*.sql
var Reference embed.FS

// ReferenceQuery returns a reference query by its file name under reference/.
func ReferenceQuery(name string) string {
	b, err := Reference.ReadFile("reference/" + name)
	if err != nil {
		panic("sql: no reference query " + name) // a typo in a constant name, caught by any test
	}
	return string(b)
}

// Queries holds the API's read queries.
//
//go:embed queries/*.sql
var Queries embed.FS

// Query returns a read query by its file name under queries/.
func Query(name string) (string, error) {
	b, err := Queries.ReadFile("queries/" + name)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
