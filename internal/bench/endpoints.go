package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Endpoint is the cost of one kind of request on an idle server: the largest merchant over
// the last year of data, one request at a time. It shows which reads the load's tail is made of.
type Endpoint struct {
	Request string  `json:"request"`
	Count   int     `json:"count"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	// Errors counts answers other than 200 (a read past the API's statement timeout is a 503).
	Errors int `json:"errors"`
}

// endpointRequests are every endpoint of the mix, plus the status-filtered reads that take
// another path (customer figures and cohorts from the customer sets of migration 007).
var endpointRequests = []string{
	"/v1/summary", "/v1/timeseries?grain=day", "/v1/timeseries?grain=week", "/v1/timeseries?grain=month",
	"/v1/timeseries?grain=quarter", "/v1/breakdown/product", "/v1/breakdown/category", "/v1/breakdown/city",
	"/v1/breakdown/region", "/v1/breakdown/delivery_type", "/v1/breakdown/payment_method", "/v1/abc",
	"/v1/customers", "/v1/customers/cohorts",
	"/v1/summary?status=delivered", "/v1/breakdown/product?status=delivered,returned", "/v1/customers?status=delivered",
	"/v1/customers?status=created,accepted,delivered,returned", "/v1/customers/cohorts?status=delivered",
}

// endpointCosts times each request n times after one warm-up, sequentially.
func endpointCosts(ctx context.Context, base string, m *mix, n int) ([]Endpoint, error) {
	largest := m.merchants[0]
	tok, err := m.token(largest)
	if err != nil {
		return nil, err
	}
	to := m.last
	from := to.AddDate(-1, 0, 1)
	client := &http.Client{Timeout: 30 * time.Second}
	var out []Endpoint
	for _, path := range endpointRequests {
		u, err := url.Parse(base + path)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("from", from.Format(time.DateOnly))
		q.Set("to", to.Format(time.DateOnly))
		u.RawQuery = q.Encode()
		lat := make([]float64, 0, n)
		errs := 0
		for i := range n + 1 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			start := time.Now()
			res, err := client.Do(req)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if i == 0 { // the first request warms the connection's plan and the cache
				continue
			}
			lat = append(lat, float64(time.Since(start).Microseconds())/1000)
			if res.StatusCode != http.StatusOK {
				errs++
			}
		}
		out = append(out, Endpoint{Request: path, Count: n, P50ms: percentile(lat, 50), P99ms: percentile(lat, 99), Errors: errs})
	}
	return out, nil
}
