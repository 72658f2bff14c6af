package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	sqlfiles "github.com/merchantagg/merchantagg/sql"
)

// Load is one fixed-rate run of the request mix.
type Load struct {
	Name     string  `json:"name"`
	Rate     int     `json:"rate"`
	Requests uint64  `json:"requests"`
	P50ms    float64 `json:"p50_ms"`
	P95ms    float64 `json:"p95_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// Errors are answers other than 200 and the two below; Shed are the 503s of admission
	// control (the service at capacity); TimedOut got no answer within the client's 30 s.
	// The latencies are those of the answered (200) requests.
	Errors   uint64 `json:"errors"`
	Shed     uint64 `json:"shed"`
	TimedOut uint64 `json:"timed_out"`
}

// Baseline compares the same summaries computed by the API and on the source (the definition in plain SQL, sql/reference),
// with the same concurrency.
type Baseline struct {
	Requests    int     `json:"requests"`
	Concurrency int     `json:"concurrency"`
	APIP50ms    float64 `json:"api_p50_ms"`
	APIP99ms    float64 `json:"api_p99_ms"`
	SourceP50ms float64 `json:"source_p50_ms"`
	SourceP99ms float64 `json:"source_p99_ms"`
	RatioP50    float64 `json:"ratio_p50"`
	RatioP99    float64 `json:"ratio_p99"`
	// APIErrors of APIRequests: the API side runs every request, the source side may stop
	// at its budget; latencies compare the first Requests of both.
	APIErrors   int `json:"api_errors"`
	APIRequests int `json:"api_requests"`
}

// mix draws the requests a dashboard makes: every endpoint, half of them for the largest
// merchant and half for random ones, ranges of a week to a year inside the data.
type mix struct {
	mu          sync.Mutex
	rnd         *rand.Rand
	merchants   []int64
	first, last time.Time
	tokens      map[int64]string
}

func newMix(merchants []int64, first, last time.Time, seed uint64) *mix {
	return &mix{rnd: rand.New(rand.NewPCG(seed, 0xbe7c4)), merchants: merchants, first: first, last: last, tokens: map[int64]string{}}
}

var rangeDays = []int{7, 30, 90, 180, 365}

// request is one drawn request.
type request struct {
	merchant int64
	from, to time.Time
	path     string
	query    url.Values
}

// draw returns a request; with largest the merchant is the largest and the range a year.
func (m *mix) draw(largestYear bool) request {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := request{merchant: m.merchants[0], query: url.Values{}}
	days := 365
	if !largestYear {
		if m.rnd.IntN(2) == 1 {
			r.merchant = m.merchants[m.rnd.IntN(len(m.merchants))]
		}
		days = rangeDays[m.rnd.IntN(len(rangeDays))]
	}
	r.from, r.to = m.window(m.rnd, days)
	switch p := m.rnd.IntN(100); {
	case p < 22:
		r.path = "/v1/summary"
	case p < 26: // a comparison
		r.path = "/v1/summary"
		r.query.Set("compare", "previous_year")
	case p < 30: // a drill-down
		r.path = "/v1/summary"
		r.query.Set("delivery_type", "courier")
	case p < 55:
		r.path = "/v1/timeseries"
		r.query.Set("grain", []string{"day", "week", "month", "quarter"}[m.rnd.IntN(4)])
		switch m.rnd.IntN(5) {
		case 0:
			r.query.Set("compare", "previous_year")
		case 1:
			r.query.Set("category_id", "1")
		}
	case p < 75:
		r.path = "/v1/breakdown/" + []string{"product", "category", "city", "region", "delivery_type", "payment_method"}[m.rnd.IntN(6)]
	case p < 85:
		r.path = "/v1/abc"
	case p < 95:
		r.path = "/v1/customers"
	default:
		r.path = "/v1/customers/cohorts"
	}
	r.query.Set("from", r.from.Format(time.DateOnly))
	r.query.Set("to", r.to.Format(time.DateOnly))
	return r
}

// window draws a range of days days inside the data, ending on a random day (the last day of
// data when the data are shorter).
func (m *mix) window(rnd *rand.Rand, days int) (from, to time.Time) {
	span := int(m.last.Sub(m.first).Hours()/24) + 1
	end := span - 1
	if span > days {
		end = days - 1 + rnd.IntN(span-days+1)
	}
	to = m.first.AddDate(0, 0, end)
	return to.AddDate(0, 0, -days+1), to
}

func (m *mix) token(merchant int64) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.tokens[merchant]; ok {
		return t, nil
	}
	t, err := auth.Issue([]byte(benchSecret), merchant, auth.RoleMerchant, 24*time.Hour, time.Now())
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	m.tokens[merchant] = t
	return t, nil
}

func (m *mix) targeter(base string, largestYear bool) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		r := m.draw(largestYear)
		tok, err := m.token(r.merchant)
		if err != nil {
			return err
		}
		t.Method, t.URL = http.MethodGet, base+r.path+"?"+r.query.Encode()
		t.Header = http.Header{"Authorization": {"Bearer " + tok}}
		return nil
	}
}

// attack runs the mix at rate for d and summarises it: answered, shed and timed-out requests,
// and the latencies of the answered ones.
func attack(name, base string, m *mix, largestYear bool, rate int, d time.Duration) Load {
	a := vegeta.NewAttacker(vegeta.Timeout(30*time.Second), vegeta.KeepAlive(true))
	l := Load{Name: name, Rate: rate}
	var answered []float64
	for res := range a.Attack(m.targeter(base, largestYear), vegeta.Rate{Freq: rate, Per: time.Second}, d, name) {
		l.Requests++
		switch {
		case res.Code == http.StatusOK:
			answered = append(answered, float64(res.Latency.Microseconds())/1000)
		case res.Code == http.StatusServiceUnavailable && bytes.Contains(res.Body, []byte(`"overloaded"`)):
			l.Shed++
		case res.Code == 0 && res.Latency >= 30*time.Second:
			l.TimedOut++
		default:
			l.Errors++
		}
	}
	l.P50ms, l.P95ms, l.P99ms, l.MaxMs = percentile(answered, 50), percentile(answered, 95), percentile(answered, 99), percentile(answered, 100)
	return l
}

// loadPhase serves the API as its own process and measures the mix at each rate and the
// largest merchant over a year at 200 rps, then the server's peak memory; then, on a fresh
// server (no backlog from an overloaded run), the source baseline. The largest merchant's run
// comes before the mix's rates above its own: after an overload, it measured the backlog.
func loadPhase(ctx context.Context, o Options, env []string, m *mix, r *Result, st *stage) error {
	const largestRate = 200
	srv, err := startServe(ctx, o.Bin, env)
	if err != nil {
		return err
	}
	defer func() { _, _ = srv.stop() }()
	// Warm the pools and the cache as a running service would be.
	attack("warm-up", srv.url, m, false, 20, 2*time.Second)
	largest := func() {
		l := attack("largest merchant, 1 year", srv.url, m, true, largestRate, o.Duration)
		r.Load = append(r.Load, l)
		st.say("load: largest merchant over a year at %d rps: p50 %.1f ms, p99 %.1f; shed %d, timed out %d, errors %d", largestRate, l.P50ms, l.P99ms, l.Shed, l.TimedOut, l.Errors)
	}
	done := false
	for _, rate := range o.Rates {
		if rate > largestRate && !done {
			largest()
			done = true
		}
		l := attack("mix", srv.url, m, false, rate, o.Duration)
		r.Load = append(r.Load, l)
		st.say("load: mix at %d rps: p50 %.1f ms, p95 %.1f, p99 %.1f, max %.1f; of %d shed %d, timed out %d, errors %d", rate, l.P50ms, l.P95ms, l.P99ms, l.MaxMs, l.Requests, l.Shed, l.TimedOut, l.Errors)
	}
	if !done {
		largest()
	}
	if r.ServeRSSMiB, err = srv.stop(); err != nil {
		return err
	}

	fresh, err := startServe(ctx, o.Bin, env)
	if err != nil {
		return err
	}
	defer func() { _, _ = fresh.stop() }()
	if r.Endpoints, err = endpointCosts(ctx, fresh.url, m, o.EndpointRequests, endpointRequests); err != nil {
		return err
	}
	dash, err := dashboardCosts(ctx, fresh.url, m, o.EndpointRequests)
	if err != nil {
		return err
	}
	r.Dashboard = &dash
	st.say("dashboard: %d requests, last year p50 %.1f ms, random years p50 %.1f ms, errors %d", dash.Requests, dash.P50ms, dash.RandomP50ms, dash.Errors)
	if r.Baseline, err = baseline(ctx, o, fresh.url, m); err != nil {
		return err
	}
	b := r.Baseline
	st.say("baseline: %d summaries × %d at a time: API p50 %.2f ms p99 %.2f; source p50 %.1f ms p99 %.1f; %.0f× / %.0f×",
		b.Requests, b.Concurrency, b.APIP50ms, b.APIP99ms, b.SourceP50ms, b.SourceP99ms, b.RatioP50, b.RatioP99)
	_, err = fresh.stop()
	return err
}

// baseline times the same summaries (a range and its previous range: order and customer
// figures) through the API and with the definition's plain SQL on the source.
func baseline(ctx context.Context, o Options, base string, m *mix) (Baseline, error) {
	b := Baseline{Concurrency: o.BaselineConcurrency}
	reqs := make([]request, o.BaselineRequests)
	for i := range reqs {
		reqs[i] = m.draw(false)
		reqs[i].path = "/v1/summary"
		reqs[i].query.Del("grain")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var failed atomic.Int64
	api, err := closedLoop(ctx, reqs, o.BaselineConcurrency, 0, func(ctx context.Context, r request) error {
		tok, err := m.token(r.merchant)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+r.path+"?"+r.query.Encode(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			failed.Add(1) // a 503 (timeout) is a result to report, not a broken bench
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	src, err := db.Open(ctx, dbtest.URL(o.SourceDB))
	if err != nil {
		return b, err
	}
	defer src.Close()
	metrics, customers := sqlfiles.ReferenceQuery("metrics.sql"), sqlfiles.ReferenceQuery("customers.sql")
	all := []string{"created", "accepted", "delivered", "cancelled", "returned"}
	source, err := closedLoop(ctx, reqs, o.BaselineConcurrency, o.BaselineBudget, func(ctx context.Context, r request) error {
		days := int(r.to.Sub(r.from).Hours()/24) + 1
		prevTo := r.from.AddDate(0, 0, -1)
		for _, rg := range [][2]time.Time{{r.from, r.to}, {prevTo.AddDate(0, 0, -days+1), prevTo}} {
			if err := drain(ctx, src, metrics, r.merchant, rg[0], rg[1], all, o.Timezone, nil); err != nil {
				return err
			}
			if err := drain(ctx, src, customers, r.merchant, rg[0], rg[1], all, o.Timezone); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return b, err
	}
	b.Requests, b.APIErrors, b.APIRequests = len(source), int(failed.Load()), len(api)
	apiSame := api[:len(source)] // the source may have run out of budget first
	b.APIP50ms, b.APIP99ms = percentile(apiSame, 50), percentile(apiSame, 99)
	b.SourceP50ms, b.SourceP99ms = percentile(source, 50), percentile(source, 99)
	b.RatioP50, b.RatioP99 = b.SourceP50ms/b.APIP50ms, b.SourceP99ms/b.APIP99ms
	return b, nil
}

func drain(ctx context.Context, pool *pgxpool.Pool, q string, args ...any) error {
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// closedLoop runs do for each request, concurrency at a time, and returns each one's latency
// in ms in request order. With a budget it stops starting requests once the budget is spent.
func closedLoop(ctx context.Context, reqs []request, concurrency int, budget time.Duration, do func(context.Context, request) error) ([]float64, error) {
	lat := make([]float64, len(reqs))
	done := make([]bool, len(reqs))
	var mu sync.Mutex
	var first error
	next := 0
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				stop := i >= len(reqs) || first != nil || (budget > 0 && time.Since(start) > budget)
				next++
				mu.Unlock()
				if stop {
					return
				}
				t := time.Now()
				err := do(ctx, reqs[i])
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				lat[i], done[i] = float64(time.Since(t).Microseconds())/1000, err == nil
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	n := slices.Index(done, false) // requests 0..n-1 all finished
	if n < 0 {
		n = len(reqs)
	}
	return lat[:n], nil
}

func percentile(ms []float64, p float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	s := slices.Clone(ms)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
