package httpapi

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/stats"
)

// drill is a request's dimension filter (docs/metrics.md, Drill-down).
type drill struct {
	dimension gen.FilterDimension
	param     string
	id        *int64
	label     *string
}

// parseDrill takes at most one of the six filters.
func parseDrill(productID, categoryID, cityID *int64, region, deliveryType, paymentMethod *string) (*drill, *Problem) {
	var set []drill
	for _, d := range []drill{
		{gen.FilterDimensionProduct, "product_id", productID, nil},
		{gen.FilterDimensionCategory, "category_id", categoryID, nil},
		{gen.FilterDimensionCity, "city_id", cityID, nil},
		{gen.FilterDimensionRegion, "region", nil, region},
		{gen.FilterDimensionDeliveryType, "delivery_type", nil, deliveryType},
		{gen.FilterDimensionPaymentMethod, "payment_method", nil, paymentMethod},
	} {
		if d.id != nil || d.label != nil {
			set = append(set, d)
		}
	}
	switch len(set) {
	case 0:
		return nil, nil
	case 1:
		return &set[0], nil
	}
	return nil, badParam(set[1].param, fmt.Sprintf("at most one dimension filter: %s and %s", set[0].param, set[1].param))
}

func (d *drill) key() string {
	if d.id != nil {
		return strconv.FormatInt(*d.id, 10)
	}
	return *d.label
}

func (d *drill) filter() gen.Filter { return gen.Filter{Dimension: d.dimension, Key: d.key()} }

// keys resolves the filter against the merchant's data: an unknown key is a 400 naming it.
func (h *handlers) keys(ctx context.Context, merchantID int64, d *drill) (*stats.Keys, *Problem, error) {
	k, err := h.reader.FilterKeys(ctx, merchantID, string(d.dimension), d.id, d.label)
	if errors.Is(err, stats.ErrUnknownKey) {
		return nil, badParam(d.param, fmt.Sprintf("unknown %s %q", d.param, d.key())), nil
	}
	return k, nil, err
}
