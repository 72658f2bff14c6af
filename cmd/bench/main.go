// Command bench runs merchantagg's benchmark (`make bench`): see internal/bench and
// BENCHMARKS.md. It prints progress as it goes and saves the run under bench/results.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/merchantagg/merchantagg/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: "+strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	o := bench.Options{Timezone: "Europe/Moscow", Log: os.Stdout}
	var rates, changes string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.Orders, "orders", 1_000_000, "orders in the source")
	fs.IntVar(&o.Merchants, "merchants", 0, "merchants in the source (default orders/20000, at least 10)")
	fs.Uint64Var(&o.Seed, "seed", 1, "generator and request-mix seed")
	fs.StringVar(&o.Bin, "bin", "bin/merchantagg", "the merchantagg binary")
	fs.StringVar(&rates, "rates", "50,200,500", "request rates of the load runs, per second")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "length of each load run")
	fs.IntVar(&o.BaselineRequests, "baseline-requests", 200, "summaries timed through the API and on the source")
	fs.IntVar(&o.BaselineConcurrency, "baseline-concurrency", 4, "of those, how many at a time")
	fs.DurationVar(&o.BaselineBudget, "baseline-budget", 2*time.Minute, "time bound of the source side")
	fs.IntVar(&o.EndpointRequests, "endpoint-requests", 30, "times each kind of request is timed alone")
	fs.StringVar(&changes, "changes", "1000,10000", "orders changed before each incremental refresh")
	fs.IntVar(&o.IncrementalRuns, "incremental-runs", 3, "refreshes timed for each size of change")
	fs.DurationVar(&o.RefreshInterval, "refresh-interval", time.Minute, "REFRESH_INTERVAL of the freshness probe")
	fs.StringVar(&o.OutDir, "out", ".", "where BENCHMARKS.md and bench/ are written")
	fs.BoolVar(&o.SkipBackfill, "skip-backfill", false, "reuse the analytics database a previous run refreshed")
	fs.IntVar(&o.RollupYears, "rollup-years", 30, "random years of the ABC analysis timed on the afternoon rollup and on merchantagg")
	fs.IntVar(&o.LargeSellerOrders, "large-seller", 0, "orders of the large seller (one merchant, 50k products, databases of its own); 0: skip it")
	fs.DurationVar(&o.Soak, "soak", 0, "run only the soak this long (at least 2m; 10m for the record) and add it to the saved result")
	redraw := fs.Bool("redraw", false, "only redraw BENCHMARKS.md and the chart from bench/results")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *redraw {
		return bench.Redraw(o.OutDir)
	}
	if o.Merchants == 0 {
		o.Merchants = max(10, o.Orders/20_000)
	}
	var err error
	if o.Rates, err = ints("rates", rates); err != nil {
		return err
	}
	if o.Changes, err = ints("changes", changes); err != nil {
		return err
	}
	switch {
	case o.Orders < 1000:
		return errors.New("-orders must be at least 1000")
	case o.Duration <= 0 || o.RefreshInterval <= 0 || o.BaselineBudget <= 0:
		return errors.New("-duration, -refresh-interval and -baseline-budget must be positive")
	case o.BaselineRequests < 1 || o.BaselineConcurrency < 1:
		return errors.New("-baseline-requests and -baseline-concurrency must be positive")
	case o.IncrementalRuns < 1:
		return errors.New("-incremental-runs must be positive")
	}
	if _, err := os.Stat(o.Bin); err != nil {
		return fmt.Errorf("-bin: %w (run make build)", err)
	}
	o.SourceDB = fmt.Sprintf("merchantagg_bench_src_%d", o.Orders)
	o.AnalyticsDB = fmt.Sprintf("merchantagg_bench_agg_%d", o.Orders)
	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if err := bench.Report(o.OutDir, r); err != nil {
		return err
	}
	fmt.Println("saved: BENCHMARKS.md, bench/latency.png, bench/results/")
	return nil
}

func ints(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: want positive integers separated by commas, got %q", name, s)
		}
		out = append(out, n)
	}
	return out, nil
}
