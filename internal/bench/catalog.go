package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Catalog is the cost of catalog changes: each timed as the command that makes it show
// (`merchantagg refresh` for a product's and a city's move, `merchantagg reconcile` for a
// category moved under another parent), against the same command with nothing changed.
type Catalog struct {
	RefreshIdleSeconds float64 `json:"refresh_idle_seconds"`
	ProductLines       int64   `json:"product_lines"`
	ProductSeconds     float64 `json:"product_seconds"`
	CityOrders         int64   `json:"city_orders"`
	CitySeconds        float64 `json:"city_seconds"`
	// ReconcileSeconds is a reconciliation with nothing drifted; TotalsSeconds the month
	// totals by status alone, on the source (what it cost before it saw the dimensions).
	ReconcileSeconds float64 `json:"reconcile_seconds"`
	TotalsSeconds    float64 `json:"totals_seconds"`
	ParentProducts   int64   `json:"parent_products"`
	ParentSeconds    float64 `json:"parent_seconds"`
}

func catalogPhase(ctx context.Context, o Options, src *pgxpool.Pool, env []string, largest int64, st *stage) (Catalog, error) {
	var c Catalog
	timed := func(args ...string) (float64, error) {
		run, err := runBin(ctx, o.Bin, env, args...)
		return run.seconds, err
	}
	var err error
	if _, err = timed("refresh"); err != nil { // nothing left over from the phases before
		return c, err
	}
	if c.RefreshIdleSeconds, err = timed("refresh"); err != nil {
		return c, err
	}
	var id int64
	if err := src.QueryRow(ctx, query("catalog_product.sql"), largest).Scan(&id, &c.ProductLines); err != nil {
		return c, fmt.Errorf("move a product: %w", err)
	}
	if c.ProductSeconds, err = timed("refresh"); err != nil {
		return c, err
	}
	st.say("catalog: product %d (%d lines) moved category, refreshed in %.2f s (idle refresh %.2f s)", id, c.ProductLines, c.ProductSeconds, c.RefreshIdleSeconds)
	if err := src.QueryRow(ctx, query("catalog_city.sql")).Scan(&id, &c.CityOrders); err != nil {
		return c, fmt.Errorf("move a city: %w", err)
	}
	if c.CitySeconds, err = timed("refresh"); err != nil {
		return c, err
	}
	st.say("catalog: city %d (%d orders) moved region, refreshed in %.2f s", id, c.CityOrders, c.CitySeconds)

	if c.ReconcileSeconds, err = timed("reconcile"); err != nil {
		return c, err
	}
	start := time.Now()
	if _, err := src.Exec(ctx, query("reconcile_totals.sql"), o.Timezone); err != nil {
		return c, fmt.Errorf("month totals: %w", err)
	}
	c.TotalsSeconds = time.Since(start).Seconds()
	if err := src.QueryRow(ctx, query("catalog_parent.sql")).Scan(&id, &c.ParentProducts); err != nil {
		return c, fmt.Errorf("move a category: %w", err)
	}
	if c.ParentSeconds, err = timed("reconcile"); err != nil {
		return c, err
	}
	st.say("catalog: reconcile %.2f s (month totals alone %.2f s); category %d (%d products) moved parent, reconciled in %.2f s",
		c.ReconcileSeconds, c.TotalsSeconds, id, c.ParentProducts, c.ParentSeconds)
	return c, nil
}
