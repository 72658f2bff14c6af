package seed

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// The generator's vocabularies. Weights are percentages of orders.
var (
	deliveryTypes   = []string{"courier", "pickup_point", "post", "express"}
	deliveryWeights = []float64{40, 35, 15, 10}
	paymentMethods  = []string{"card", "sbp", "cash_on_delivery", "installments", "wallet"}
	paymentWeights  = []float64{45, 25, 12, 8, 10}
	// Hours after creation until delivery, per delivery type: min and spread.
	deliveryHours = map[string][2]float64{
		"courier": {18, 60}, "pickup_point": {30, 96}, "post": {96, 240}, "express": {2, 20},
	}
	deliveryCW  = cumulative(deliveryWeights)
	paymentCW   = cumulative(paymentWeights)
	linesCW     = cumulative([]float64{55, 25, 12, 8}) // 1..4 lines per order
	qtyCW       = cumulative([]float64{75, 17, 8})     // quantity 1..3
	hourWeights = []float64{1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3.5, 4.5, 5, 5.5, 6, 6, 5.5, 5.5, 5.5, 6, 6.5, 7, 7, 6, 4, 2}
)

const (
	cancelRate  = 0.07 // of all orders
	returnRate  = 0.06 // of delivered orders
	seasonality = 0.25 // amplitude of the yearly wave
	growth      = 0.6  // order volume grows by this share over the whole span
)

// order is one generated order with its lines and at most one return.
type order struct {
	id, merchantID, customerID, cityID              int64
	deliveryType, paymentMethod, status             string
	totalCents                                      int64
	createdAt                                       time.Time
	acceptedAt, deliveredAt, cancelledAt, updatedAt *time.Time
	items                                           []item
	ret                                             *ret
}

type item struct {
	id, productID  int64
	quantity       int32
	unitPriceCents int64
}

type ret struct {
	id, itemID  int64
	quantity    int32
	amountCents int64
	createdAt   time.Time
}

type merchant struct {
	id                    int64
	name                  string
	createdAt             time.Time
	firstProduct, nProd   int64
	customerOff, nCustomr int64
}

type product struct {
	id, merchantID, categoryID int64
	sku, name                  string
	priceCents                 int64
	createdAt                  time.Time
}

// world is everything but the orders: drawn first, so that orders can refer to it.
type world struct {
	opts       Options
	rng        *rand.Rand
	loc        *time.Location
	merchants  []merchant
	merchantCW []float64 // cumulative merchant weights
	products   []product
	customers  int64
	custCity   []int64
	cities     []city
	cityCW     []float64
	dayCW      []float64 // cumulative day weights over [From, To]
	days       int
	hourCW     []float64
}

func newWorld(opts Options, cities []city) *world {
	w := &world{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x6d657263)), cities: cities}
	w.loc = opts.Location
	w.days = int(opts.To.Sub(opts.From).Hours()/24) + 1
	w.hourCW = cumulative(hourWeights)

	pops := make([]float64, len(cities))
	for i, c := range cities {
		pops[i] = c.population
	}
	w.cityCW = cumulative(pops)

	// Merchant sizes follow a Zipf law: merchant 1 is the largest, a long tail is small.
	weights := make([]float64, opts.Merchants)
	for i := range weights {
		weights[i] = 1 / math.Pow(float64(i+1), 1.15)
	}
	w.merchantCW = cumulative(weights)
	total := w.merchantCW[len(w.merchantCW)-1]

	w.customers = max(int64(opts.Orders)*2/5, 10)
	w.custCity = make([]int64, w.customers)
	for i := range w.custCity {
		w.custCity[i] = w.cities[pick(w.rng, w.cityCW)].id
	}

	var nextProduct int64 = 1
	for i := range opts.Merchants {
		expected := float64(opts.Orders) * weights[i] / total
		m := merchant{
			id:           int64(i + 1),
			name:         merchantName(i),
			createdAt:    opts.From.AddDate(0, 0, -30-w.rng.IntN(700)),
			firstProduct: nextProduct,
			nProd:        int64(min(max(expected/40, 5), float64(maxProducts(opts)))),
			// Each merchant's customers are a window of the global customers, so customers are
			// shared between merchants and each merchant has its own regulars.
			customerOff: w.rng.Int64N(w.customers),
			nCustomr:    int64(min(max(expected/2.2, 5), float64(w.customers))),
		}
		for k := range m.nProd {
			price := int64(math.Exp(6.3+1.0*w.rng.NormFloat64())*100) + 4900
			w.products = append(w.products, product{
				id: nextProduct + k, merchantID: m.id, categoryID: int64(11 + w.rng.IntN(len(categoryNames)*5)),
				sku: skuOf(m.id, k), name: productName(w.rng), priceCents: price - price%100 + 90,
				createdAt: m.createdAt.Add(time.Duration(w.rng.IntN(200*24)) * time.Hour),
			})
		}
		nextProduct += m.nProd
		w.merchants = append(w.merchants, m)
	}

	// Daily volume: growth over the span, a yearly wave peaking in December, a Black Friday
	// week and busier weekends.
	dw := make([]float64, w.days)
	for d := range dw {
		day := opts.From.AddDate(0, 0, d)
		v := 1 + growth*float64(d)/float64(w.days)
		v *= 1 + seasonality*math.Cos(2*math.Pi*float64(day.YearDay()-350)/365)
		if day.Month() == time.November && day.Day() >= 22 {
			v *= 1.6
		}
		if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
			v *= 1.15
		}
		dw[d] = v
	}
	w.dayCW = cumulative(dw)
	return w
}

// createdTimes draws every order's creation time, sorted, so order ids grow with time.
func (w *world) createdTimes() []time.Time {
	ts := make([]time.Time, w.opts.Orders)
	for i := range ts {
		d := pick(w.rng, w.dayCW)
		day := time.Date(w.opts.From.Year(), w.opts.From.Month(), w.opts.From.Day()+d, 0, 0, 0, 0, w.loc)
		h := pick(w.rng, w.hourCW)
		ts[i] = day.Add(time.Duration(h)*time.Hour + time.Duration(w.rng.Int64N(int64(time.Hour))))
		ts[i] = ts[i].Truncate(time.Microsecond) // PostgreSQL's precision
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}

// end is the last instant of the generated span: later events have not happened yet.
func (w *world) end() time.Time {
	return time.Date(w.opts.To.Year(), w.opts.To.Month(), w.opts.To.Day()+1, 0, 0, 0, 0, w.loc)
}

// next draws order number id created at t. itemID and returnID are the last ids used.
func (w *world) next(id int64, t time.Time, itemID, returnID *int64) order {
	r := w.rng
	m := &w.merchants[pick(r, w.merchantCW)]
	// Pareto-like: a merchant's first customers come back far more often.
	k := int64(float64(m.nCustomr) * math.Pow(r.Float64(), 2.2))
	cust := (m.customerOff + k) % w.customers
	cityID := w.custCity[cust]
	if r.Float64() < 0.1 {
		cityID = w.cities[pick(r, w.cityCW)].id
	}
	o := order{
		id: id, merchantID: m.id, customerID: cust + 1, cityID: cityID,
		deliveryType:  deliveryTypes[pick(r, deliveryCW)],
		paymentMethod: paymentMethods[pick(r, paymentCW)],
		createdAt:     t,
	}

	lines := pick(r, linesCW) + 1
	for range lines {
		// Pareto product popularity within the merchant.
		p := w.products[m.firstProduct-1+int64(float64(m.nProd)*math.Pow(r.Float64(), 2.5))]
		price := p.priceCents
		if r.Float64() < 0.15 {
			price = price * 9 / 10
		}
		*itemID++
		it := item{id: *itemID, productID: p.id, quantity: int32(pick(r, qtyCW) + 1), unitPriceCents: price}
		o.items = append(o.items, it)
		o.totalCents += int64(it.quantity) * it.unitPriceCents
	}

	end := w.end()
	at := func(base time.Time, hours float64) *time.Time {
		v := base.Add(time.Duration(hours * float64(time.Hour))).Truncate(time.Microsecond)
		if v.After(end) {
			return nil
		}
		return &v
	}
	last := t
	o.status = "created"
	if o.acceptedAt = at(t, 0.05+r.Float64()*2); o.acceptedAt != nil {
		o.status = "accepted"
		last = *o.acceptedAt
	}
	if r.Float64() < cancelRate {
		if o.cancelledAt = at(t, 0.1+r.Float64()*48); o.cancelledAt != nil {
			o.status = "cancelled"
			last = *o.cancelledAt
			if o.acceptedAt != nil && o.acceptedAt.After(*o.cancelledAt) {
				o.acceptedAt = nil
			}
		}
	} else if o.acceptedAt != nil {
		dh := deliveryHours[o.deliveryType]
		if o.deliveredAt = at(t, dh[0]+r.Float64()*dh[1]); o.deliveredAt != nil {
			o.status = "delivered"
			last = *o.deliveredAt
			if r.Float64() < returnRate {
				if rt := at(*o.deliveredAt, 24+r.Float64()*14*24); rt != nil {
					line := o.items[r.IntN(len(o.items))]
					q := int32(1 + r.IntN(int(line.quantity)))
					*returnID++
					o.ret = &ret{id: *returnID, itemID: line.id, quantity: q, amountCents: int64(q) * line.unitPriceCents, createdAt: *rt}
					o.status = "returned"
					last = *rt
				}
			}
		}
	}
	o.updatedAt = &last
	return o
}

// maxProducts is the cap of a merchant's catalog (Options.MaxProducts).
func maxProducts(o Options) int {
	if o.MaxProducts > 0 {
		return o.MaxProducts
	}
	return 5000
}

// pick draws an index with probability proportional to its weight (cw is cumulative).
func pick(r *rand.Rand, cw []float64) int {
	u := r.Float64() * cw[len(cw)-1]
	i, _ := slices.BinarySearch(cw, u)
	return min(i, len(cw)-1)
}

func cumulative(w []float64) []float64 {
	out := make([]float64, len(w))
	var s float64
	for i, v := range w {
		s += v
		out[i] = s
	}
	return out
}
