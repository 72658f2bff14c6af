package tests

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"io"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/auth"
)

// TestETagFollowsTheData: a data response carries a weak ETag, private no-cache and Vary; the
// same tag gets a 304 without a body, also while the aggregate tables are locked (it reads the
// version alone); the tag moves when the merchant's figures change (a refresh, a range refresh
// and a reconciliation repair after changes behind the scan's back, a product's category move)
// and stays when nothing changed (a scan, a refresh that nets to nothing); another merchant's
// tag never matches.
func TestETagFollowsTheData(t *testing.T) {
	t.Parallel()
	_, src, an, a, r := setUp(t)
	ctx := context.Background()
	const m, other = 8, 9
	tok, otherTok := token(t, m, auth.RoleMerchant), token(t, other, auth.RoleMerchant)
	paths := []string{
		"/v1/summary?from=2025-01-01&to=2025-06-30",
		"/v1/breakdown/category?from=2025-01-01&to=2025-06-30&parent_id=0",
		"/v1/timeseries?from=2025-01-01&to=2025-06-30&grain=month&format=csv",
	}
	tags := func() []string {
		t.Helper()
		var out []string
		for _, path := range paths {
			status, body, h := getRaw(t, a, path, tok, nil)
			require.Equal(t, 200, status, string(body))
			require.Equal(t, "private, no-cache", h.Get("Cache-Control"))
			require.Contains(t, h.Get("Vary"), "Authorization")
			require.Contains(t, h.Get("Vary"), "Accept")
			require.Regexp(t, `^W/"[0-9a-f]+"$`, h.Get("ETag"))
			out = append(out, h.Get("ETag"))
		}
		return out
	}
	notModified := func(tags []string) {
		t.Helper()
		for i, path := range paths {
			status, body, h := getRaw(t, a, path, tok, map[string]string{"If-None-Match": tags[i]})
			require.Equal(t, 304, status, string(body))
			require.Empty(t, body)
			require.Equal(t, tags[i], h.Get("ETag"))
		}
	}

	first := tags()
	require.Len(t, map[string]bool{first[0]: true, first[1]: true, first[2]: true}, 3, "one tag per request")
	notModified(first)
	require.Equal(t, first, tags(), "asked again, the same tags")

	t.Run("another merchant's tag never matches", func(t *testing.T) {
		for i, path := range paths {
			status, _, h := getRaw(t, a, path, otherTok, map[string]string{"If-None-Match": first[i]})
			require.Equal(t, 200, status)
			require.NotEqual(t, first[i], h.Get("ETag"))
		}
		status, _, _ := getRaw(t, a, paths[0]+"&merchant_id=9", tok, map[string]string{"If-None-Match": first[0]})
		require.Equal(t, 403, status, "nor is another merchant's version read for a 304")
	})

	t.Run("the representation is part of the tag", func(t *testing.T) {
		_, _, h := getRaw(t, a, "/v1/timeseries?from=2025-01-01&to=2025-06-30&grain=month", tok, nil)
		require.NotEqual(t, first[2], h.Get("ETag"))
	})

	t.Run("a 304 reads no aggregate", func(t *testing.T) {
		release := lockTables(t, an, "agg.key_months", "agg.customer_tiles")
		defer release()
		notModified(first)
	})

	t.Run("nothing changed keeps the tags", func(t *testing.T) {
		_, err := r.Scan(ctx)
		require.NoError(t, err)
		require.Equal(t, first, tags())
		// A refresh that reads the merchant's days again and nets to nothing.
		require.NoError(t, r.RefreshRange(ctx, m, day("2025-02-01").Time, day("2025-02-28").Time))
		require.Equal(t, first, tags())
	})

	var prev = first
	step := func(name string, change func()) {
		t.Run(name, func(t *testing.T) {
			change()
			now := tags()
			for i := range now {
				require.NotEqual(t, prev[i], now[i], paths[i])
			}
			status, _, _ := getRaw(t, a, paths[0], tok, map[string]string{"If-None-Match": prev[0]})
			require.Equal(t, 200, status, "the old tag is stale")
			prev = now
		})
	}
	step("a refresh", func() {
		changeSource(t, src, m)
		_, err := r.RefreshChanged(ctx, nil)
		require.NoError(t, err)
	})
	step("a range refresh", func() {
		driftSource(t, src, m)
		require.NoError(t, r.RefreshRange(ctx, m, day("2020-12-01").Time, day("2026-10-31").Time))
	})
	step("a reconciliation repair", func() {
		driftSource(t, src, m)
		drifted, err := r.Reconcile(ctx)
		require.NoError(t, err)
		require.Positive(t, drifted)
		_, err = r.RefreshAllDirty(ctx, nil)
		require.NoError(t, err)
	})
	step("a category move", func() {
		mustExec(t, src, `UPDATE products SET category_id = 2 WHERE id = (SELECT min(id) FROM products WHERE merchant_id = $1)`, m)
		_, err := r.RefreshChanged(ctx, nil)
		require.NoError(t, err)
	})
	step("a city's region move", func() {
		mustExec(t, src, `UPDATE cities SET region = region || ' (moved)' WHERE id = 1`)
		_, err := r.Scan(ctx)
		require.NoError(t, err)
	})
}

// TestCompressedResponses: JSON and CSV answer gzip or brotli when asked, and decode to the
// same body as the plain answer.
func TestCompressedResponses(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	tok := token(t, 1, auth.RoleMerchant)
	for _, path := range []string{
		"/v1/breakdown/product?from=2025-01-01&to=2025-06-30&page_size=500",
		"/v1/abc?from=2025-01-01&to=2025-06-30&format=csv",
		"/v1/summary?from=2025-01-01&to=2025-06-30",
		"/v1/timeseries?grain=day&from=2025-01-01&to=2025-06-30",
	} {
		status, plain, h := getRaw(t, a, path, tok, nil)
		require.Equal(t, 200, status)
		require.Empty(t, h.Get("Content-Encoding"))
		for enc, decode := range map[string]func(io.Reader) (io.Reader, error){
			"gzip":    func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
			"deflate": func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil },
			"br":      func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		} {
			status, body, h := getRaw(t, a, path, tok, map[string]string{"Accept-Encoding": enc})
			require.Equal(t, 200, status)
			require.Equal(t, enc, h.Get("Content-Encoding"), path)
			rd, err := decode(bytes.NewReader(body))
			require.NoError(t, err)
			got, err := io.ReadAll(rd)
			require.NoError(t, err)
			require.Equal(t, string(plain), string(got), "%s %s", enc, path)
			require.Less(t, len(body), len(plain), "%s %s: smaller", enc, path)
		}
	}
}
