package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/dbtest"
)

// get sends a raw GET so tests can send what the generated client would refuse to build.
func get(t *testing.T, a *api, path string, header string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	require.NoError(t, err)
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var m map[string]any
	if strings.Contains(res.Header.Get("Content-Type"), "json") {
		require.NoError(t, json.Unmarshal(body, &m), string(body))
	}
	return res.StatusCode, m, res.Header
}

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	const q = "/v1/summary?from=2025-01-01&to=2025-01-31"
	exp := time.Now().Add(time.Hour).Unix()
	for _, tc := range []struct {
		name   string
		header string
		status int
	}{
		{"no token", "", 401},
		{"not bearer", "Basic dXNlcjpwYXNz", 401},
		{"garbage", "Bearer abc.def.ghi", 401},
		{"forged", "Bearer " + signed(t, jwt.SigningMethodHS256, []byte("not-the-secret-but-long-enough!"), jwt.MapClaims{"merchant_id": 1, "role": "merchant", "exp": exp}), 401},
		{"expired", "Bearer " + signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"merchant_id": 1, "role": "merchant", "exp": time.Now().Add(-time.Hour).Unix()}), 401},
		{"alg none", "Bearer " + signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"merchant_id": 1, "role": "admin", "exp": exp}), 401},
		{"no exp", "Bearer " + signed(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"merchant_id": 1, "role": "merchant"}), 401},
		{"valid", "Bearer " + token(t, 1, auth.RoleMerchant), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := get(t, a, q, tc.header)
			require.Equal(t, tc.status, status, body)
			if status == 401 {
				require.Equal(t, "unauthorized", body["code"])
				require.Contains(t, h.Get("WWW-Authenticate"), "Bearer")
				require.Equal(t, "application/problem+json", h.Get("Content-Type"))
			}
		})
	}
}

func TestMerchantIsolation(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	merchantA := "Bearer " + token(t, 1, auth.RoleMerchant)
	adminTok := "Bearer " + token(t, 0, auth.RoleAdmin)
	for _, tc := range []struct {
		name, path, header string
		status             int
		param              string
	}{
		{"A asks for B", "/v1/summary?from=2025-01-01&to=2025-01-31&merchant_id=2", merchantA, 403, "merchant_id"},
		{"A asks for B's series", "/v1/timeseries?from=2025-01-01&to=2025-01-31&merchant_id=2", merchantA, 403, "merchant_id"},
		{"A names itself", "/v1/summary?from=2025-01-01&to=2025-01-31&merchant_id=1", merchantA, 200, ""},
		{"admin without merchant", "/v1/summary?from=2025-01-01&to=2025-01-31", adminTok, 400, "merchant_id"},
		{"admin for B", "/v1/summary?from=2025-01-01&to=2025-01-31&merchant_id=2", adminTok, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := get(t, a, tc.path, tc.header)
			require.Equal(t, tc.status, status, body)
			if tc.param != "" {
				require.Equal(t, tc.param, body["param"])
			}
			if status == 200 {
				require.EqualValues(t, map[bool]float64{true: 2, false: 1}[strings.Contains(tc.path, "merchant_id=2")], body["merchant_id"])
			}
		})
	}
}

// TestRowLevelSecurity queries every agg table as the API's role: with no merchant set, an
// empty one, or another merchant's id, it reads nothing that is not that merchant's. Merchant
// 2's orders change first, so that every table, pending changes too, holds its rows.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, src, owner, _, r := setUp(t)
	changeSource(t, src, 2)
	_, err := r.RefreshChanged(ctx, nil)
	require.NoError(t, err)
	apiPool := dbtest.APIPool(t, p.AnalyticsURL())

	rows, err := owner.Query(ctx, `
		SELECT c.relname, c.relrowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'agg' AND c.relkind IN ('r', 'p') ORDER BY 1`)
	require.NoError(t, err)
	type table struct {
		Name string
		RLS  bool
	}
	tables, err := pgx.CollectRows(rows, pgx.RowToStructByPos[table])
	require.NoError(t, err)
	require.NotEmpty(t, tables)

	var role string
	var super, bypass bool
	require.NoError(t, apiPool.QueryRow(ctx, `SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&role, &super, &bypass))
	require.Equal(t, db.APIRole, role)
	require.False(t, super)
	require.False(t, bypass)

	for _, tb := range tables {
		t.Run(tb.Name, func(t *testing.T) {
			require.True(t, tb.RLS, "RLS is enabled")
			ident := pgx.Identifier{"agg", tb.Name}.Sanitize()
			var total, ofTwo int
			require.NoError(t, owner.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE merchant_id = 2) FROM "+ident).Scan(&total, &ofTwo))
			require.Positive(t, ofTwo, "the table has rows of merchant 2 to hide")

			for _, setting := range []*string{nil, ptr(""), ptr("999999"), ptr("2")} {
				name := "unset"
				if setting != nil {
					name = fmt.Sprintf("%q", *setting)
				}
				t.Run(name, func(t *testing.T) {
					var n, others int
					err := pgx.BeginFunc(ctx, apiPool, func(tx pgx.Tx) error {
						if setting != nil {
							if _, err := tx.Exec(ctx, "SELECT set_config('app.merchant_id', $1, true)", *setting); err != nil {
								return err
							}
						}
						return tx.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE merchant_id <> 2) FROM "+ident).Scan(&n, &others)
					})
					require.NoError(t, err)
					require.Zero(t, others, "never another merchant's rows")
					if setting != nil && *setting == "2" {
						require.Equal(t, ofTwo, n)
					} else {
						require.Zero(t, n)
					}
				})
			}
		})
	}

	// The API role reads neither pipeline state nor the source.
	for _, q := range []string{"SELECT count(*) FROM pipeline.dirty_days", "SELECT count(*) FROM src.orders", "SELECT count(*) FROM pipeline.settings"} {
		_, err := apiPool.Exec(ctx, q)
		require.ErrorContains(t, err, "permission denied", q)
	}
	// Nor can it write aggregates.
	_, err = apiPool.Exec(ctx, "DELETE FROM agg.key_months")
	require.ErrorContains(t, err, "permission denied")
}

func ptr[T any](v T) *T { return &v }

// TestBadInput: every bad parameter is a 400 problem+json naming it, never a 500 or SQL text.
func TestBadInput(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	tok := "Bearer " + token(t, 1, auth.RoleMerchant)
	for _, tc := range []struct {
		name, query, param string
	}{
		{"missing from", "/v1/summary?to=2025-01-31", "from"},
		{"missing to", "/v1/summary?from=2025-01-01", "to"},
		{"bad date", "/v1/summary?from=2025-13-01&to=2025-12-31", "from"},
		{"not a date", "/v1/timeseries?from=yesterday&to=2025-12-31", "from"},
		{"from after to", "/v1/summary?from=2025-02-01&to=2025-01-31", "from"},
		{"over three years", "/v1/summary?from=2020-01-01&to=2023-01-01", "to"},
		{"unknown status", "/v1/summary?from=2025-01-01&to=2025-01-31&status=lost", "status"},
		{"SQL in status", "/v1/summary?from=2025-01-01&to=2025-01-31&status=" + url.QueryEscape("delivered');DROP TABLE agg.key_months;--"), "status"},
		{"empty status", "/v1/summary?from=2025-01-01&to=2025-01-31&status=", "status"},
		{"unknown grain", "/v1/timeseries?from=2025-01-01&to=2025-01-31&grain=decade", "grain"},
		{"SQL in grain", "/v1/timeseries?from=2025-01-01&to=2025-01-31&grain=" + url.QueryEscape("day' OR 1=1"), "grain"},
		{"merchant_id not a number", "/v1/summary?from=2025-01-01&to=2025-01-31&merchant_id=" + url.QueryEscape("1 OR 1=1"), "merchant_id"},
		{"merchant_id zero", "/v1/summary?from=2025-01-01&to=2025-01-31&merchant_id=0", "merchant_id"},
		{"merchant_id overflow", "/v1/summary?from=2025-01-01&to=2025-01-31&merchant_id=99999999999999999999", "merchant_id"},
		{"unknown dimension", "/v1/breakdown/planet?from=2025-01-01&to=2025-01-31", "dimension"},
		{"unknown sort key", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&sort=population", "sort"},
		{"SQL in sort key", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&sort=" + url.QueryEscape("gmv; DROP TABLE agg.key_months"), "sort"},
		{"sort by a column not offered", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&sort=merchant_id", "sort"},
		{"page_size over the max", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&page_size=501", "page_size"},
		{"absurd page_size", "/v1/abc?from=2025-01-01&to=2025-01-31&page_size=1000000000000", "page_size"},
		{"page_size zero", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&page_size=0", "page_size"},
		{"page zero", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&page=0", "page"},
		{"absurd page", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&page=99999999999", "page"},
		{"unknown class", "/v1/abc?from=2025-01-01&to=2025-01-31&class=D", "class"},
		{"unknown abc metric", "/v1/abc?from=2025-01-01&to=2025-01-31&metric=orders", "metric"},
		{"unknown abc sort", "/v1/abc?from=2025-01-01&to=2025-01-31&sort=gmv", "sort"},
		{"a over 1", "/v1/abc?from=2025-01-01&to=2025-01-31&a=1.5", "a"},
		{"a zero", "/v1/abc?from=2025-01-01&to=2025-01-31&a=0", "a"},
		{"b below a", "/v1/abc?from=2025-01-01&to=2025-01-31&a=0.9&b=0.5", "b"},
		{"cohorts from after to", "/v1/customers/cohorts?from=2025-03-01&to=2025-01-31", "from"},
		{"customers without to", "/v1/customers?from=2025-01-01", "to"},
		{"unknown compare", "/v1/summary?from=2025-01-01&to=2025-01-31&compare=last_week", "compare"},
		{"compare with a custom range", "/v1/summary?from=2025-01-01&to=2025-01-31&compare=previous_year&compare_from=2024-01-01&compare_to=2024-01-31", "compare"},
		{"compare_from alone", "/v1/summary?from=2025-01-01&to=2025-01-31&compare_from=2024-01-01", "compare_to"},
		{"compare_to alone", "/v1/timeseries?from=2025-01-01&to=2025-01-31&compare_to=2024-01-31", "compare_from"},
		{"compare_from after compare_to", "/v1/summary?from=2025-01-01&to=2025-01-31&compare_from=2024-02-01&compare_to=2024-01-31", "compare_from"},
		{"compare_from not a date", "/v1/summary?from=2025-01-01&to=2025-01-31&compare_from=last%20year&compare_to=2024-01-31", "compare_from"},
		{"compared range over three years", "/v1/summary?from=2025-01-01&to=2025-01-31&compare_from=2019-01-01&compare_to=2024-01-31", "compare_to"},
		{"series compared with a range of another length", "/v1/timeseries?from=2025-01-01&to=2025-01-31&compare_from=2024-01-01&compare_to=2024-01-30", "compare_to"},
		{"two dimension filters", "/v1/summary?from=2025-01-01&to=2025-01-31&city_id=1&payment_method=card", "payment_method"},
		{"another merchant's product", "/v1/summary?from=2025-01-01&to=2025-01-31&product_id=999999", "product_id"},
		{"unknown category filter", "/v1/timeseries?from=2025-01-01&to=2025-01-31&category_id=999999", "category_id"},
		{"unknown city filter", "/v1/summary?from=2025-01-01&to=2025-01-31&city_id=999999", "city_id"},
		{"city_id zero", "/v1/summary?from=2025-01-01&to=2025-01-31&city_id=0", "city_id"},
		{"unknown region", "/v1/summary?from=2025-01-01&to=2025-01-31&region=Atlantis", "region"},
		{"SQL in region", "/v1/timeseries?from=2025-01-01&to=2025-01-31&region=" + url.QueryEscape("x' OR '1'='1"), "region"},
		{"unknown delivery type", "/v1/summary?from=2025-01-01&to=2025-01-31&delivery_type=teleport", "delivery_type"},
		{"absurd payment method", "/v1/summary?from=2025-01-01&to=2025-01-31&payment_method=" + strings.Repeat("x", 5000), "payment_method"},
		{"parent_id on products", "/v1/breakdown/product?from=2025-01-01&to=2025-01-31&parent_id=1", "parent_id"},
		{"parent_id on cities", "/v1/breakdown/city?from=2025-01-01&to=2025-01-31&parent_id=0", "parent_id"},
		{"unknown parent_id", "/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=999999", "parent_id"},
		{"negative parent_id", "/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=-1", "parent_id"},
		{"parent_id not a number", "/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=abc", "parent_id"},
		{"SQL in parent_id", "/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=" + url.QueryEscape("1 OR 1=1"), "parent_id"},
		{"parent_id overflow", "/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=99999999999999999999", "parent_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := get(t, a, tc.query, tok)
			require.Equal(t, 400, status, body)
			require.Equal(t, "application/problem+json", h.Get("Content-Type"))
			require.Equal(t, tc.param, body["param"], body)
			require.Equal(t, "bad_parameter", body["code"])
			require.NotContains(t, fmt.Sprint(body["detail"]), "SQLSTATE")
			require.NotContains(t, fmt.Sprint(body["detail"]), "\n")
		})
	}
	// Valid edge cases are answered.
	for _, q := range []string{
		"/v1/summary?from=2021-01-01&to=2023-12-31",                            // exactly three years
		"/v1/summary?from=2025-01-01&to=2025-01-31&status=delivered,delivered", // duplicate status
		"/v1/timeseries?from=2022-01-01&to=2024-12-31&grain=day",               // the longest daily series
		"/v1/summary?from=1900-01-01&to=1900-01-02",
		"/v1/breakdown/product?from=2025-01-01&to=2025-01-31&page=1000000&page_size=500",          // past the end
		"/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=0",                        // the top level
		"/v1/timeseries?from=2022-01-01&to=2024-12-31&grain=year&compare=previous_year",           // years
		"/v1/summary?from=2025-01-01&to=2025-01-31&compare_from=2025-03-01&compare_to=2025-06-30", // later, longer
		"/v1/breakdown/category?from=2025-01-01&to=2025-01-31&parent_id=50",                       // a leaf: no rows
		"/v1/abc?from=2025-01-01&to=2025-01-31&a=0.5&b=0.5",
	} {
		status, body, _ := get(t, a, q, tok)
		require.Equal(t, 200, status, "%s: %v", q, body)
	}
	status, body, _ := get(t, a, "/v1/nothing", tok)
	require.Equal(t, 404, status)
	require.Equal(t, "not_found", body["code"])
}

func TestPublicEndpoints(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	for path, want := range map[string]string{
		"/healthz":      "ok",
		"/readyz":       "ready",
		"/openapi.yaml": "openapi: 3.0.3",
		"/docs/":        "swagger-ui",
	} {
		res, err := http.Get(a.url + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode, path)
		require.Contains(t, string(body), want, path)
	}
}
