package tests

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// getRaw asks the API and returns the status, the body and the headers.
func getRaw(t *testing.T, a *api, path, tok string, header map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, body, res.Header
}

// flatten turns a JSON object into the columns the CSV export promises: nested objects
// flattened, "metrics" and "customers" without a prefix, others prefixed with their name.
func flatten(prefix string, v map[string]any, out map[string]any) {
	for k, e := range v {
		if m, ok := e.(map[string]any); ok {
			p := prefix
			if k != "metrics" && k != "customers" {
				p = prefix + k + "_"
			}
			flatten(p, m, out)
			continue
		}
		out[prefix+k] = e
	}
}

// requireSameRows: every CSV row equals its JSON item, column by column (numbers by value;
// free text with a spreadsheet formula's first character carries a leading quote).
func requireSameRows(t *testing.T, items []any, body []byte) {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(body))
	recs, err := r.ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	header := recs[0]
	require.Len(t, recs[1:], len(items), "one row per item")
	for i, rec := range recs[1:] {
		want := map[string]any{}
		flatten("", items[i].(map[string]any), want)
		for j, col := range header {
			cell := rec[j]
			v := want[col] // absent: an omitted null
			switch x := v.(type) {
			case nil:
				require.Empty(t, cell, col)
			case json.Number:
				wf, _ := x.Float64()
				got, err := strconv.ParseFloat(cell, 64)
				require.NoError(t, err, "%s: %q", col, cell)
				require.Equal(t, wf, got, col)
			case bool:
				require.Equal(t, strconv.FormatBool(x), cell, col)
			case string:
				if cell != x {
					require.Equal(t, "'"+x, cell, col)
					require.Contains(t, "=+-@", x[:1], "only a formula's first character is escaped")
				}
			default:
				t.Fatalf("column %s: unexpected %T", col, v)
			}
		}
	}
}

func decodeJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v map[string]any
	require.NoError(t, d.Decode(&v))
	return v
}

// TestCSVExportEqualsJSON: each list's CSV, asked by Accept or by format=csv, parsed back by
// encoding/csv, holds the JSON's rows and figures in the same order: every row without
// paging, a page with it; names with commas, quotes, newlines and emoji round-trip, and one
// that starts a spreadsheet formula is defused.
func TestCSVExportEqualsJSON(t *testing.T) {
	t.Parallel()
	_, src, an, a, _ := setUp(t)
	const m = 3
	for i, name := range []string{"Mug, large", `The "best" kettle`, "Two\nlines", "Cat 🐱 bowl", "=HYPERLINK(\"http://x\")", "-5 blender", "@home lamp"} {
		mustExec(t, src, `UPDATE products SET name = $2 WHERE id = (SELECT id FROM products WHERE merchant_id = $1 ORDER BY id OFFSET $3 LIMIT 1)`, m, name, i)
	}
	_, err := refresh.New(an).RefreshChanged(context.Background(), nil)
	require.NoError(t, err)
	tok := token(t, m, auth.RoleMerchant)

	for _, tc := range []struct {
		path  string
		items string // the JSON array the CSV rows are
		paged bool   // the JSON list has pages: fetched at page_size=500
	}{
		{"/v1/breakdown/product?from=2023-11-01&to=2026-10-31&sort=name", "rows", true},
		{"/v1/breakdown/category?from=2025-01-01&to=2025-12-31&parent_id=0", "rows", true},
		{"/v1/breakdown/region?from=2025-01-01&to=2025-12-31&status=delivered", "rows", true},
		{"/v1/abc?from=2025-01-01&to=2025-12-31&class=B", "products", true},
		{"/v1/timeseries?from=2025-01-01&to=2025-12-31&grain=month&compare=previous_year", "points", false},
		{"/v1/timeseries?from=2025-01-01&to=2025-03-31&grain=week&city_id=1", "points", false},
		{"/v1/customers/cohorts?from=2025-01-01&to=2025-12-31", "cohorts", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			var items []any
			for page := 1; ; page++ {
				path := tc.path
				if tc.paged {
					path += "&page_size=500&page=" + strconv.Itoa(page)
				}
				status, body, _ := getRaw(t, a, path, tok, nil)
				require.Equal(t, 200, status, string(body))
				v := decodeJSON(t, body)
				list, _ := v[tc.items].([]any)
				items = append(items, list...)
				if !tc.paged || len(list) < 500 {
					break
				}
			}
			if tc.items == "cohorts" { // long format: one row per cohort × month offset
				var long []any
				for _, c := range items {
					co := c.(map[string]any)
					for k, share := range co["retention"].([]any) {
						long = append(long, map[string]any{"cohort": co["cohort"], "offset": json.Number(strconv.Itoa(k)),
							"customers": co["customers"], "share": share})
					}
				}
				items = long
			}
			require.NotEmpty(t, items)
			for _, how := range []struct {
				suffix string
				header map[string]string
			}{{"", map[string]string{"Accept": "text/csv"}}, {"&format=csv", nil}} {
				status, body, h := getRaw(t, a, tc.path+how.suffix, tok, how.header)
				require.Equal(t, 200, status, string(body))
				require.Equal(t, "text/csv; charset=utf-8", h.Get("Content-Type"))
				require.Contains(t, h.Get("Content-Disposition"), ".csv")
				requireSameRows(t, items, body)
			}
			if tc.paged { // with paging, the CSV is that page
				status, body, _ := getRaw(t, a, tc.path+"&page=2&page_size=3", tok, map[string]string{"Accept": "text/csv"})
				require.Equal(t, 200, status)
				recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
				require.NoError(t, err)
				want := items[min(3, len(items)):min(6, len(items))]
				requireSameRows(t, want, body)
				require.Len(t, recs, len(want)+1)
			}
		})
	}

	// The names came through whole.
	_, body, _ := getRaw(t, a, "/v1/breakdown/product?from=2023-11-01&to=2026-10-31&format=csv", tok, nil)
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, r := range recs[1:] {
		names[r[1]] = true
	}
	for _, n := range []string{"Mug, large", `The "best" kettle`, "Two\nlines", "Cat 🐱 bowl", `'=HYPERLINK("http://x")`, "'-5 blender", "'@home lamp"} {
		require.True(t, names[n], "%q in %v", n, strings.Join(recs[1][:2], ","))
	}
}
