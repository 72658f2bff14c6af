package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
)

// TestPagingIsConsistent: all pages concatenated equal the unpaged list, without duplicates,
// and a page past the end is empty with the right total.
func TestPagingIsConsistent(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	ctx := context.Background()
	tok := bearer(token(t, 1, auth.RoleMerchant))
	from, to := day("2024-01-01"), day("2024-12-31")
	for _, tc := range []struct {
		dim  gen.GetBreakdownParamsDimension
		sort gen.GetBreakdownParamsSort
	}{
		{"product", "-gmv"}, {"product", "items"}, {"product", "-cancel_rate"}, {"product", "name"},
		{"city", "-orders"}, {"category", "return_rate"}, {"region", "-avg_delivery_hours"},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.dim, tc.sort), func(t *testing.T) {
			all, err := a.client.GetBreakdownWithResponse(ctx, tc.dim, &gen.GetBreakdownParams{From: from, To: to, Sort: &tc.sort, PageSize: ptr(int64(500))}, tok)
			require.NoError(t, err)
			require.Equal(t, 200, all.StatusCode(), string(all.Body))
			require.Greater(t, all.JSON200.Total, int64(7))
			var pages []gen.BreakdownRow
			seen := map[string]bool{}
			for p := int64(1); ; p++ {
				res, err := a.client.GetBreakdownWithResponse(ctx, tc.dim, &gen.GetBreakdownParams{From: from, To: to, Sort: &tc.sort, Page: &p, PageSize: ptr(int64(7))}, tok)
				require.NoError(t, err)
				require.Equal(t, all.JSON200.Total, res.JSON200.Total)
				if len(res.JSON200.Rows) == 0 {
					require.Equal(t, (all.JSON200.Total+6)/7+1, p, "only pages past the end are empty")
					break
				}
				for _, r := range res.JSON200.Rows {
					require.False(t, seen[r.Key], "duplicate %s", r.Key)
					seen[r.Key] = true
				}
				pages = append(pages, res.JSON200.Rows...)
			}
			// The unpaged list is capped at page_size 500; all pages together hold every row.
			require.Len(t, pages, int(all.JSON200.Total))
			keys := func(rs []gen.BreakdownRow) []string {
				out := make([]string, len(rs))
				for i, r := range rs {
					out[i] = r.Key
				}
				return out
			}
			require.Equal(t, keys(all.JSON200.Rows), keys(pages[:len(all.JSON200.Rows)]))
			require.Equal(t, all.JSON200.Rows, pages[:len(all.JSON200.Rows)])
		})
	}
	t.Run("abc", func(t *testing.T) {
		all, err := a.client.GetABCWithResponse(ctx, &gen.GetABCParams{From: from, To: to, PageSize: ptr(int64(500))}, tok)
		require.NoError(t, err)
		var pages []gen.ABCProduct
		for p := int64(1); p <= (all.JSON200.Total+49)/50+1; p++ {
			res, err := a.client.GetABCWithResponse(ctx, &gen.GetABCParams{From: from, To: to, Page: &p, PageSize: ptr(int64(50))}, tok)
			require.NoError(t, err)
			require.Equal(t, all.JSON200.Total, res.JSON200.Total)
			pages = append(pages, res.JSON200.Products...)
		}
		require.Len(t, pages, int(all.JSON200.Total))
		require.Equal(t, all.JSON200.Products, pages[:len(all.JSON200.Products)])
		for i, p := range pages {
			require.EqualValues(t, i+1, p.Rank, "default order is the ABC rank, no gaps or duplicates")
		}
	})
	t.Run("nulls last both ways", func(t *testing.T) {
		// With only cancelled orders no key has deliveries: every avg_delivery_hours is null
		// for products, and mixed with values for cities under two statuses.
		st := []gen.OrderStatus{gen.OrderStatusCancelled, gen.OrderStatusDelivered}
		for _, s := range []gen.GetBreakdownParamsSort{"avg_delivery_hours", "-avg_delivery_hours"} {
			res, err := a.client.GetBreakdownWithResponse(ctx, "city", &gen.GetBreakdownParams{From: day("2025-01-01"), To: day("2025-01-03"), Status: &st, Sort: &s, PageSize: ptr(int64(500))}, bearer(token(t, 9, auth.RoleMerchant)))
			require.NoError(t, err)
			rows := res.JSON200.Rows
			firstNull := len(rows)
			for i, r := range rows {
				if r.Metrics.AvgDeliveryHours == nil {
					firstNull = min(firstNull, i)
				} else {
					require.Less(t, i, firstNull, "a value after a null (%s)", s)
				}
			}
		}
	})
}
