package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/dbtest"
)

// freshnessPhase runs `serve --with-worker` at the configured interval, commits one new order
// for the largest merchant, and times until the API shows it.
func freshnessPhase(ctx context.Context, o Options, env []string, src *pgxpool.Pool, m *mix, r *Result, st *stage) error {
	an, err := db.Open(ctx, dbtest.URL(o.AnalyticsDB))
	if err != nil {
		return err
	}
	defer an.Close()
	started := time.Now()
	srv, err := startServe(ctx, o.Bin, append(append([]string{}, env...), "REFRESH_INTERVAL="+o.RefreshInterval.String()), "--with-worker")
	if err != nil {
		return err
	}
	defer func() { _, _ = srv.stop() }()
	// Its first scan and reconcile run at start; the change must come after them and after the
	// refreshes they queue (one of those would pick it up early), as in steady operation. The
	// reconcile takes minutes at 10M: the wait allows for the one this run timed.
	wait := 2 * time.Minute
	if r.Catalog != nil {
		wait += 3 * time.Duration(r.Catalog.ReconcileSeconds*float64(time.Second))
	}
	for {
		var last time.Time
		var busy bool
		if err := an.QueryRow(ctx, `SELECT coalesce(last_scan_at, '-infinity'),
		                                   EXISTS (SELECT FROM river_job WHERE kind <> 'scan_changes'
		                                           AND state IN ('available', 'running', 'retryable', 'pending'))
		                            FROM pipeline.settings`).Scan(&last, &busy); err != nil {
			return fmt.Errorf("last scan: %w", err)
		}
		if last.After(started) && !busy {
			break
		}
		if time.Since(started) > wait {
			if !last.After(started) {
				return fmt.Errorf("the worker never scanned: %s", srv.logs.String())
			}
			return fmt.Errorf("the worker's start-up jobs were still running after %s: %s", wait, srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	merchant := m.merchants[0]
	tok, err := m.token(merchant)
	if err != nil {
		return err
	}
	var day time.Time
	if err := src.QueryRow(ctx, query("touch_order.sql"), merchant, o.Timezone).Scan(&day); err != nil {
		return fmt.Errorf("change the source: %w", err)
	}
	changed := time.Now()
	url := fmt.Sprintf("%s/v1/summary?from=%s&to=%s", srv.url, day.Format(time.DateOnly), day.Format(time.DateOnly))
	before := int64(-1)
	for {
		n, err := ordersOf(ctx, url, tok)
		if err != nil {
			return err
		}
		if before < 0 {
			before = n
		} else if n != before {
			break
		}
		if time.Since(changed) > 3*o.RefreshInterval+2*time.Minute {
			return fmt.Errorf("the change never showed: %s", srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.FreshnessSeconds = time.Since(changed).Seconds()
	r.RefreshInterval = o.RefreshInterval.String()
	st.say("freshness: a new order showed in the API %.1f s after its commit (REFRESH_INTERVAL=%s)", r.FreshnessSeconds, o.RefreshInterval)
	return nil
}

func ordersOf(ctx context.Context, url, tok string) (int64, error) {
	var s gen.Summary
	if err := getJSON(ctx, url, tok, &s); err != nil {
		return 0, fmt.Errorf("summary: %w", err)
	}
	return s.Metrics.Orders, nil
}

// getJSON decodes a 200 answer of the API into out.
func getJSON(ctx context.Context, url, tok string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return json.NewDecoder(res.Body).Decode(out)
}
