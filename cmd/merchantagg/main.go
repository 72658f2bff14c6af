// Command merchantagg is the single binary of the README's command table: source init, seed, migrate, refresh,
// reconcile, serve, worker and token. It only wires packages together; configuration comes from the
// environment (internal/config).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: merchantagg <command> [flags]

commands:
  source init                      create the source schema (demo, tests, benchmarks)
  seed --merchants N --orders N --seed S [--from D --to D] [--max-products N]
                                   fill the source with synthetic data
  migrate                          bring the analytics database to the latest schema
  refresh [--merchant ID] [--from D --to D] [--jobs N]
                                   refresh synchronously (no flags: everything changed;
                                   --jobs: sets of merchants refreshed at once, default CPUs)
  reconcile                        compare the aggregates with the source, refresh what drifted
  serve [--with-worker]            the HTTP API (and the River worker with the flag)
  worker                           River workers and the periodic change scan
  token --merchant ID [--admin] [--ttl D]
                                   print a JWT signed with JWT_SECRET

environment: SOURCE_DATABASE_URL, ANALYTICS_DATABASE_URL, ANALYTICS_READ_DATABASE_URL,
  JWT_SECRET, JWT_PUBLIC_KEY_FILE, HTTP_ADDR (:8080), AGG_TIMEZONE (Europe/Moscow),
  REFRESH_INTERVAL (1m), RECONCILE_INTERVAL (1h), CHANGE_LOOKBACK (0s),
  CHANGE_MAX_TXN_AGE (1h), REFRESH_JOB_TIMEOUT (30m), REFRESH_STATEMENT_TIMEOUT (10m),
  REFRESH_MAX_ATTEMPTS (10), WORKER_CONCURRENCY (4), METRICS_ADDR (worker; off),
  RATE_LIMIT (50), RATE_BURST (100), ADMIN_RATE_LIMIT (500), ADMIN_RATE_BURST (1000),
  ADMISSION_WAIT (1s)
`

// errUsage asks main to print the usage and exit 0.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stdout, usage)
	case err != nil:
		// One line: the reason, never a stack or a multi-line SQL text.
		fmt.Fprintln(os.Stderr, "merchantagg: "+strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("no command; run `merchantagg help`")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help":
		return errUsage
	case "source":
		if len(rest) == 0 || rest[0] != "init" {
			return errors.New("unknown source command; want `merchantagg source init`")
		}
		return sourceInit(ctx, rest[1:])
	case "seed":
		return seedCmd(ctx, rest, stderr)
	case "migrate":
		return migrateCmd(ctx, rest)
	case "refresh":
		return refreshCmd(ctx, rest, stdout, stderr)
	case "reconcile":
		return reconcileCmd(ctx, rest, stdout, stderr)
	case "serve":
		return serveCmd(ctx, rest, stderr)
	case "worker":
		return workerCmd(ctx, rest, stderr)
	case "token":
		return tokenCmd(rest, stdout)
	}
	return fmt.Errorf("unknown command %q; run `merchantagg help`", cmd)
}

// flags parses a subcommand's flags quietly: errors come back as one line, not a usage dump.
func flags(name string, args []string, define func(*flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errUsage
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return nil
}
