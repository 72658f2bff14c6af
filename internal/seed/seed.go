// Package seed fills a source database with a deterministic synthetic marketplace: skewed
// merchant sizes, Pareto product popularity and repeat customers, seasonality, cancellations
// and returns, every city and method present. The same options always load the same rows.
package seed

import (
	"context"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
)

// Options choose the dataset. From and To are business days (in Location), both included.
type Options struct {
	Merchants int
	Orders    int
	Seed      uint64
	From, To  time.Time
	Location  *time.Location
	// MaxProducts caps a merchant's catalog (0: 5000). A merchant has about one product per
	// 40 of its orders; a raised cap makes a large seller (50k products).
	MaxProducts int
	// Progress, when set, is called with the number of orders loaded so far.
	Progress func(done int)
}

// ErrNotEmpty is returned when the source already has orders: seeding twice would mix datasets.
var ErrNotEmpty = errors.New("source already has orders; seed an empty source (merchantagg source init on a new database)")

// Validate names the first bad option.
func (o Options) Validate() error {
	switch {
	case o.Merchants < 1 || o.Merchants > 1_000_000:
		return errors.New("--merchants must be between 1 and 1000000")
	case o.Orders < 0 || o.Orders > 500_000_000:
		return errors.New("--orders must be between 0 and 500000000")
	case o.Location == nil:
		return errors.New("no time zone")
	case o.To.Before(o.From):
		return errors.New("--to is before --from")
	case o.MaxProducts < 0 || o.MaxProducts > 10_000_000:
		return errors.New("--max-products must be between 1 and 10000000")
	}
	return nil
}

//go:embed cities.csv
var citiesCSV string

type city struct {
	id         int64
	name       string
	region     string
	lat, lon   float64
	population float64
}

func loadCities() ([]city, error) {
	recs, err := csv.NewReader(strings.NewReader(citiesCSV)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("cities.csv: %w", err)
	}
	out := make([]city, len(recs))
	for i, r := range recs {
		c := city{id: int64(i + 1), name: r[0], region: r[1]}
		if c.lat, err = strconv.ParseFloat(r[2], 64); err == nil {
			if c.lon, err = strconv.ParseFloat(r[3], 64); err == nil {
				c.population, err = strconv.ParseFloat(r[4], 64)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cities.csv line %d: %w", i+1, err)
		}
		out[i] = c
	}
	return out, nil
}

var categoryNames = []string{"Electronics", "Home", "Clothing", "Beauty", "Sports", "Kids", "Books", "Grocery"}
var subcategoryNames = []string{"Essentials", "Premium", "Accessories", "Sets", "Seasonal"}
var productWords = [2][]string{
	{"Smart", "Classic", "Compact", "Eco", "Pro", "Mini", "Ultra", "Soft", "Urban", "Family"},
	{"Kettle", "Backpack", "Lamp", "Headphones", "Jacket", "Blender", "Mug", "Sneakers", "Cream", "Puzzle", "Charger", "Towel"},
}

func merchantName(i int) string { return fmt.Sprintf("Merchant %03d", i+1) }
func skuOf(merchant, k int64) string {
	return fmt.Sprintf("M%d-%05d", merchant, k+1)
}
func productName(r *rand.Rand) string {
	return productWords[0][r.IntN(len(productWords[0]))] + " " + productWords[1][r.IntN(len(productWords[1]))]
}

func money(cents int64) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(cents), Exp: -2, Valid: true}
}

// Run loads the dataset into an initialised, empty source database.
func Run(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	var has bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM orders)").Scan(&has); err != nil {
		return fmt.Errorf("check source: %w", err)
	}
	if has {
		return ErrNotEmpty
	}
	cities, err := loadCities()
	if err != nil {
		return err
	}
	w := newWorld(opts, cities)
	if err := loadDimensions(ctx, pool, w); err != nil {
		return err
	}
	if err := loadOrders(ctx, pool, w); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

func loadDimensions(ctx context.Context, pool *pgxpool.Pool, w *world) error {
	var cats [][]any
	for i, n := range categoryNames {
		cats = append(cats, []any{int64(i + 1), nil, n})
	}
	for i, n := range categoryNames {
		for j, s := range subcategoryNames {
			cats = append(cats, []any{int64(11 + i*5 + j), int64(i + 1), n + " / " + s})
		}
	}
	var cits, mers, prods, custs [][]any
	for _, c := range w.cities {
		cits = append(cits, []any{c.id, c.name, c.region, c.lat, c.lon})
	}
	for _, m := range w.merchants {
		mers = append(mers, []any{m.id, m.name, m.createdAt})
	}
	for _, p := range w.products {
		prods = append(prods, []any{p.id, p.merchantID, p.categoryID, p.sku, p.name, money(p.priceCents), p.createdAt})
	}
	for i, c := range w.custCity {
		custs = append(custs, []any{int64(i + 1), c, w.opts.From.AddDate(0, 0, -w.rng.IntN(1000))})
	}
	for _, t := range []struct {
		name string
		cols []string
		rows [][]any
	}{
		{"cities", []string{"id", "name", "region", "lat", "lon"}, cits},
		{"categories", []string{"id", "parent_id", "name"}, cats},
		{"merchants", []string{"id", "name", "created_at"}, mers},
		{"products", []string{"id", "merchant_id", "category_id", "sku", "name", "price", "created_at"}, prods},
		{"customers", []string{"id", "city_id", "created_at"}, custs},
	} {
		if _, err := pool.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return fmt.Errorf("load %s: %w", t.name, err)
		}
	}
	return nil
}

const batchSize = 2000

// loadOrders generates orders in one goroutine (so the dataset does not depend on scheduling)
// and streams orders, items and returns to three COPYs on their own connections.
func loadOrders(ctx context.Context, pool *pgxpool.Pool, w *world) error {
	g, ctx := errgroup.WithContext(ctx)
	chans := [3]chan [][]any{make(chan [][]any, 8), make(chan [][]any, 8), make(chan [][]any, 8)}
	tables := [3]struct {
		name string
		cols []string
	}{
		{"orders", []string{"id", "merchant_id", "customer_id", "city_id", "delivery_type", "payment_method",
			"status", "total_amount", "created_at", "accepted_at", "delivered_at", "cancelled_at", "updated_at"}},
		{"order_items", []string{"id", "order_id", "product_id", "quantity", "unit_price"}},
		{"returns", []string{"id", "order_id", "order_item_id", "quantity", "amount", "created_at", "updated_at"}},
	}
	for i := range tables {
		g.Go(func() error {
			src := &chanSource{ctx: ctx, ch: chans[i]}
			if _, err := pool.CopyFrom(ctx, pgx.Identifier{tables[i].name}, tables[i].cols, src); err != nil {
				return fmt.Errorf("load %s: %w", tables[i].name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer func() {
			for _, c := range chans {
				close(c)
			}
		}()
		var itemID, returnID int64
		var batch [3][][]any
		flush := func() error {
			for i := range batch {
				if len(batch[i]) == 0 {
					continue
				}
				select {
				case chans[i] <- batch[i]:
				case <-ctx.Done():
					return ctx.Err()
				}
				batch[i] = nil
			}
			return nil
		}
		for i, t := range w.createdTimes() {
			o := w.next(int64(i+1), t, &itemID, &returnID)
			batch[0] = append(batch[0], []any{o.id, o.merchantID, o.customerID, o.cityID, o.deliveryType,
				o.paymentMethod, o.status, money(o.totalCents), o.createdAt, o.acceptedAt, o.deliveredAt,
				o.cancelledAt, *o.updatedAt})
			for _, it := range o.items {
				batch[1] = append(batch[1], []any{it.id, o.id, it.productID, it.quantity, money(it.unitPriceCents)})
			}
			if r := o.ret; r != nil {
				batch[2] = append(batch[2], []any{r.id, o.id, r.itemID, r.quantity, money(r.amountCents), r.createdAt, r.createdAt})
			}
			if len(batch[0]) == batchSize {
				if err := flush(); err != nil {
					return err
				}
				if w.opts.Progress != nil {
					w.opts.Progress(i + 1)
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if w.opts.Progress != nil {
			w.opts.Progress(w.opts.Orders)
		}
		return nil
	})
	return g.Wait()
}

// chanSource feeds pgx's COPY from batches of rows arriving on a channel.
type chanSource struct {
	ctx   context.Context
	ch    <-chan [][]any
	batch [][]any
	row   []any
}

func (s *chanSource) Next() bool {
	for len(s.batch) == 0 {
		b, ok := <-s.ch
		if !ok {
			return false
		}
		s.batch = b
	}
	s.row, s.batch = s.batch[0], s.batch[1:]
	return true
}

func (s *chanSource) Values() ([]any, error) { return s.row, nil }
func (s *chanSource) Err() error             { return s.ctx.Err() }
