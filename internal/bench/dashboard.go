package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Dashboard is the time to a whole dashboard of the largest merchant: every request the page
// (internal/httpapi/dashboard) sends for one range, sent as a browser sends them (who is
// looking first, then the rest six at a time), from the first request to the last answer.
type Dashboard struct {
	Requests    int     `json:"requests"`
	Count       int     `json:"count"`
	P50ms       float64 `json:"last_year_p50_ms"`
	P99ms       float64 `json:"last_year_p99_ms"`
	RandomP50ms float64 `json:"random_year_p50_ms"`
	RandomP99ms float64 `json:"random_year_p99_ms"`
	Errors      int     `json:"errors"`
}

// dashboardRequests are the page's requests on load, without the range.
var dashboardRequests = []string{
	"/v1/summary?compare=previous_year", "/v1/timeseries?grain=week", "/v1/abc?page=1&page_size=10",
	"/v1/customers/cohorts",
	"/v1/breakdown/product?sort=-gmv&page=1&page_size=10", "/v1/breakdown/category?sort=-gmv&page=1&page_size=10",
	"/v1/breakdown/city?sort=-gmv&page=1&page_size=10", "/v1/breakdown/region?sort=-gmv&page=1&page_size=10",
	"/v1/breakdown/delivery_type?sort=-gmv&page=1&page_size=10",
	"/v1/breakdown/payment_method?sort=-gmv&page=1&page_size=10",
}

// browserConnections is how many requests a browser sends to one host at a time (HTTP/1.1).
const browserConnections = 6

func dashboardCosts(ctx context.Context, base string, m *mix, n int) (Dashboard, error) {
	d := Dashboard{Requests: 1 + len(dashboardRequests), Count: n}
	tok, err := m.token(m.merchants[0])
	if err != nil {
		return d, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: browserConnections}}
	var mu sync.Mutex
	get := func(path string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			mu.Lock()
			d.Errors++
			mu.Unlock()
		}
		return nil
	}
	page := func(from, to time.Time) (float64, error) {
		rng := fmt.Sprintf("from=%s&to=%s", from.Format(time.DateOnly), to.Format(time.DateOnly))
		start := time.Now()
		if err := get("/v1/me"); err != nil {
			return 0, err
		}
		sem := make(chan struct{}, browserConnections)
		errs := make(chan error, len(dashboardRequests))
		var wg sync.WaitGroup
		for _, p := range dashboardRequests {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				sep := "?"
				if strings.Contains(p, "?") {
					sep = "&"
				}
				errs <- get(p + sep + rng)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return 0, err
			}
		}
		return float64(time.Since(start).Microseconds()) / 1000, nil
	}
	last := [2]time.Time{m.last.AddDate(-1, 0, 1), m.last}
	if _, err := page(last[0], last[1]); err != nil { // warm-up, not counted
		return d, err
	}
	d.Errors = 0
	rnd := rand.New(rand.NewPCG(uint64(n), 0xda5b))
	var lastYear, random []float64
	for range n {
		ms, err := page(last[0], last[1])
		if err != nil {
			return d, err
		}
		lastYear = append(lastYear, ms)
		from, to := m.window(rnd, 365)
		if ms, err = page(from, to); err != nil {
			return d, err
		}
		random = append(random, ms)
	}
	d.P50ms, d.P99ms = percentile(lastYear, 50), percentile(lastYear, 99)
	d.RandomP50ms, d.RandomP99ms = percentile(random, 50), percentile(random, 99)
	return d, nil
}
