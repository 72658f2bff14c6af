package stats

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/gen"
)

// The expected figures are what PostgreSQL's round(numeric, 2) gives for the same division
// (the customer queries computed them so before), halves included.
func TestPerCustomer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name             string
		orders, customer int64
		gmv              string
		wantOrders       float64
		wantGmv          string
	}{
		{"half of a hundredth up", 1, 8, "0.05", 0.13, "0.01"},
		{"half a cent up", 5, 2, "0.05", 2.5, "0.03"},
		{"thirds down", 7, 3, "1000.00", 2.33, "333.33"},
		{"thirds up", 3, 3, "2.00", 1, "0.67"},
		{"below half a cent", 1, 3, "0.01", 0.33, "0.00"},
		{"one and a half hundredths", 3, 200, "0.10", 0.02, "0.00"},
		{"a quarter of ten cents", 1, 4, "0.10", 0.25, "0.03"},
		{"large", 1, 1, "123456789012.35", 1, "123456789012.35"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, g, err := perCustomer(gen.Metrics{Orders: c.orders, Gmv: c.gmv}, c.customer)
			require.NoError(t, err)
			require.Equal(t, c.wantOrders, *o)
			require.Equal(t, c.wantGmv, *g)
		})
	}
	for _, bad := range []string{"", "12", "1.5", "-1.00", "x.00", "1.0x"} {
		_, _, err := perCustomer(gen.Metrics{Orders: 1, Gmv: bad}, 1)
		require.Error(t, err, bad)
	}
}

// A list's plan-shaping arguments become literals in its SQL: only the names given, whole
// names only, and nothing that is not a plain name as text.
func TestBindLiterals(t *testing.T) {
	t.Parallel()
	sql := "f(@slots::int[], @cancelled_coefs, @coefs, @need, @dimension, @merchant_id) -- @coefs_x"
	got := bind(sql, map[string]string{"slots": intsLiteral([]int32{0, 3}), "coefs": intsLiteral([]int32{1, -1}),
		"need": boolsLiteral([]bool{true, false})})
	require.Equal(t, "f('{0,3}'::int[]::int[], @cancelled_coefs, '{1,-1}'::int[], '{t,f}'::boolean[], @dimension, @merchant_id) -- @coefs_x", got)
	for _, bad := range []string{"", "product'", "a b", "x;--", "Product"} {
		_, err := wordLiteral(bad)
		require.Error(t, err, bad)
	}
	w, err := wordLiteral("payment_method")
	require.NoError(t, err)
	require.Equal(t, "'payment_method'::text", w)
	_, err = ABCSQL("@metric", "rank", slots(AllStatuses), "gmv' OR true")
	require.Error(t, err)
}
