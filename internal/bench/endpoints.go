package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// Endpoint is the cost of one kind of request on an idle server, the largest merchant's, one
// request at a time: over the last year of data, and over years ending on random days (the
// load's ranges). It shows which reads the load's tail is made of. The last year's edges are
// whole months; a random year's are ragged and cost more (ABC, product breakdowns: thousands
// of stored rows a day at the edges of a large merchant's range).
type Endpoint struct {
	Request string  `json:"request"`
	Count   int     `json:"count"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	// Random years, the same Count of them for every request (results before had none).
	RandomP50ms float64 `json:"random_year_p50_ms,omitempty"`
	RandomP99ms float64 `json:"random_year_p99_ms,omitempty"`
	// Errors counts answers other than 200 (a read past the API's statement timeout is a 503),
	// over both kinds of year.
	Errors int `json:"errors"`
}

// endpointRequests are every endpoint of the mix, plus the status-filtered reads that take
// another path (customer figures and cohorts, from each period's events under the filter: a
// daily series reads 365 periods' events).
var endpointRequests = []string{
	"/v1/summary", "/v1/timeseries?grain=day", "/v1/timeseries?grain=week", "/v1/timeseries?grain=month",
	"/v1/timeseries?grain=quarter", "/v1/breakdown/product", "/v1/breakdown/category", "/v1/breakdown/city",
	"/v1/breakdown/region", "/v1/breakdown/delivery_type", "/v1/breakdown/payment_method", "/v1/abc",
	"/v1/customers", "/v1/customers/cohorts",
	"/v1/summary?status=delivered", "/v1/breakdown/product?status=delivered,returned", "/v1/customers?status=delivered",
	"/v1/customers?status=created,accepted,delivered,returned", "/v1/customers/cohorts?status=delivered",
	"/v1/timeseries?grain=day&status=delivered",
	"/v1/summary?compare=previous_year", "/v1/timeseries?grain=week&compare=previous_year",
	"/v1/summary?delivery_type=courier", "/v1/timeseries?grain=month&category_id=1", "/v1/breakdown/category?parent_id=0",
}

// endpointCosts times each request n times over the last year and n times over random years,
// after one warm-up, sequentially.
func endpointCosts(ctx context.Context, base string, m *mix, n int, paths []string) ([]Endpoint, error) {
	largest := m.merchants[0]
	tok, err := m.token(largest)
	if err != nil {
		return nil, err
	}
	last := [2]time.Time{m.last.AddDate(-1, 0, 1), m.last}
	// The same random years for every request, from a fixed seed: runs compare.
	rnd := rand.New(rand.NewPCG(uint64(n), 0x7ea2))
	random := make([][2]time.Time, n)
	for i := range random {
		from, to := m.window(rnd, 365)
		random[i] = [2]time.Time{from, to}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var out []Endpoint
	for _, path := range paths {
		e := Endpoint{Request: path, Count: n}
		// get times one request; an answer other than 200 counts in e.Errors.
		get := func(r [2]time.Time) (float64, error) {
			u, err := url.Parse(base + path)
			if err != nil {
				return 0, err
			}
			q := u.Query()
			q.Set("from", r[0].Format(time.DateOnly))
			q.Set("to", r[1].Format(time.DateOnly))
			u.RawQuery = q.Encode()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			start := time.Now()
			res, err := client.Do(req)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				e.Errors++
			}
			return float64(time.Since(start).Microseconds()) / 1000, nil
		}
		// The first request warms the connection's plan and the cache; it is not counted.
		if _, err := get(last); err != nil {
			return nil, err
		}
		e.Errors = 0
		var lastYear, randomYears []float64
		for i := range n {
			ms, err := get(last)
			if err != nil {
				return nil, err
			}
			lastYear = append(lastYear, ms)
			if ms, err = get(random[i]); err != nil {
				return nil, err
			}
			randomYears = append(randomYears, ms)
		}
		e.P50ms, e.P99ms = percentile(lastYear, 50), percentile(lastYear, 99)
		e.RandomP50ms, e.RandomP99ms = percentile(randomYears, 50), percentile(randomYears, 99)
		out = append(out, e)
	}
	return out, nil
}
