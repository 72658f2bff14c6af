// Package sql embeds the project's SQL: source schema, analytics migrations, the refresh code
// package and the API's read queries. The .sql files are the source of truth; Go only runs them.
package sql

import "embed"

// Source holds the source (marketplace) schema of SPEC §2, for `merchantagg source init`.
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
