package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Soak is a long run of the request mix while a churn writer changes orders in the source and
// `serve --with-worker` refreshes them: does anything drift (latency, memory, freshness)?
type Soak struct {
	Seconds         float64      `json:"seconds"`
	Rate            int          `json:"rate"`
	ChurnPerSecond  int          `json:"churn_per_second"`
	Changed         int64        `json:"changed"`
	RefreshInterval string       `json:"refresh_interval"`
	Minutes         []SoakMinute `json:"minutes"`
	// Memory once warmed up (after the first minute) and at the end: serve's resident set, and
	// the PostgreSQL server's processes' proportional set (shared buffers shared among them).
	ServeRSSWarmMiB float64 `json:"serve_rss_warm_mib"`
	ServeRSSEndMiB  float64 `json:"serve_rss_end_mib"`
	PGPSSWarmMiB    float64 `json:"pg_pss_warm_mib"`
	PGPSSEndMiB     float64 `json:"pg_pss_end_mib"`
}

// SoakMinute is one minute of a soak: the answered requests' latencies, the failures, and the
// largest freshness lag the largest merchant saw (/v1/freshness, sampled every 5 s).
type SoakMinute struct {
	Requests   int     `json:"requests"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Errors     int     `json:"errors"`
	MaxLagSecs float64 `json:"max_lag_seconds"`
}

// soakChurn is how many source orders the churn writer changes a second.
const soakChurn = 100

func soakPhase(ctx context.Context, o Options, env []string, src *pgxpool.Pool, m *mix, st *stage) (*Soak, error) {
	s := &Soak{Rate: 100, ChurnPerSecond: soakChurn, RefreshInterval: o.RefreshInterval.String()}
	srv, err := startServe(ctx, o.Bin, append(append([]string{}, env...), "REFRESH_INTERVAL="+o.RefreshInterval.String()), "--with-worker")
	if err != nil {
		return nil, err
	}
	defer func() { _, _ = srv.stop() }()
	minutes := int(o.Soak / time.Minute)
	if minutes < 2 {
		return nil, fmt.Errorf("-soak: want at least 2m, got %s", o.Soak)
	}
	s.Minutes = make([]SoakMinute, minutes)
	latencies := make([][]float64, minutes)
	var mu sync.Mutex
	start := time.Now()
	minuteOf := func(t time.Time) int { return min(int(t.Sub(start)/time.Minute), minutes-1) }

	runCtx, cancel := context.WithTimeout(ctx, time.Duration(minutes)*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() { // the churn writer
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			var n, merchants, days int64
			if err := src.QueryRow(runCtx, query("change_orders.sql"), soakChurn, "soak"+strconv.Itoa(i), o.Timezone).Scan(&n, &merchants, &days); err != nil {
				if runCtx.Err() == nil {
					errs <- fmt.Errorf("churn: %w", err)
				}
				return
			}
			mu.Lock()
			s.Changed += n
			mu.Unlock()
		}
	}()
	go func() { // freshness as the largest merchant sees it
		defer wg.Done()
		tok, err := m.token(m.merchants[0])
		if err != nil {
			errs <- err
			return
		}
		for {
			select {
			case <-runCtx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			lag, err := freshnessLag(runCtx, srv.url, tok)
			if runCtx.Err() != nil {
				return
			}
			mu.Lock()
			i := minuteOf(time.Now())
			if err != nil { // a failed request of the soak like any other
				s.Minutes[i].Errors++
			} else {
				s.Minutes[i].MaxLagSecs = max(s.Minutes[i].MaxLagSecs, lag)
			}
			mu.Unlock()
		}
	}()
	go func() { // memory once warmed up
		defer wg.Done()
		select {
		case <-runCtx.Done():
		case <-time.After(time.Minute):
			s.ServeRSSWarmMiB, s.PGPSSWarmMiB = rssMiB(srv.cmd.Process.Pid), postgresPSSMiB()
		}
	}()
	a := vegeta.NewAttacker(vegeta.Timeout(30*time.Second), vegeta.KeepAlive(true))
	for res := range a.Attack(m.targeter(srv.url, false), vegeta.Rate{Freq: s.Rate, Per: time.Second}, time.Duration(minutes)*time.Minute, "soak") {
		i := minuteOf(res.Timestamp)
		mu.Lock()
		s.Minutes[i].Requests++
		if res.Code == http.StatusOK {
			latencies[i] = append(latencies[i], float64(res.Latency.Microseconds())/1000)
		} else {
			s.Minutes[i].Errors++
		}
		mu.Unlock()
	}
	s.ServeRSSEndMiB, s.PGPSSEndMiB = rssMiB(srv.cmd.Process.Pid), postgresPSSMiB()
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	s.Seconds = time.Since(start).Seconds()
	for i := range s.Minutes {
		s.Minutes[i].P50ms, s.Minutes[i].P99ms = percentile(latencies[i], 50), percentile(latencies[i], 99)
		st.say("soak: minute %d: %d requests, p50 %.1f ms, p99 %.1f, errors %d, lag up to %.0f s", i+1,
			s.Minutes[i].Requests, s.Minutes[i].P50ms, s.Minutes[i].P99ms, s.Minutes[i].Errors, s.Minutes[i].MaxLagSecs)
	}
	st.say("soak: serve RSS %.0f → %.0f MiB, PostgreSQL PSS %.0f → %.0f MiB, %d orders changed",
		s.ServeRSSWarmMiB, s.ServeRSSEndMiB, s.PGPSSWarmMiB, s.PGPSSEndMiB, s.Changed)
	return s, nil
}

func freshnessLag(ctx context.Context, base, tok string) (float64, error) {
	var f struct {
		Lag *float64 `json:"lag_seconds"`
	}
	if err := getJSON(ctx, base+"/v1/freshness", tok, &f); err != nil || f.Lag == nil {
		return 0, fmt.Errorf("freshness: %v", err)
	}
	return *f.Lag, nil
}

// rssMiB is a process's resident set now.
func rssMiB(pid int) float64 { return procStatus(pid, "VmRSS:") }

// postgresPSSMiB is the proportional set of every process of the PostgreSQL server (all of its
// backends share the shared buffers; PSS counts each shared page once in all).
func postgresPSSMiB() float64 {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var kib float64
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "smaps_rollup"))
		if err != nil {
			continue
		}
		kib += field(string(b), "Pss:")
	}
	return kib / 1024
}
