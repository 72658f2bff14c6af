package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/schema"
)

// binary builds cmd/merchantagg once for the test.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "merchantagg")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/merchantagg").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

type cli struct {
	bin string
	env []string
}

func (c cli) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	require.NoError(t, err)
	return o.String(), e.String(), 0
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// TestCLI drives the binary as a user would: every subcommand on fresh databases, bad input
// as one-line errors with a non-zero exit, and serve/worker stopping cleanly on SIGTERM.
func TestCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := dbtest.Pair{Source: dbtest.UniqueName("cli_src"), Analytics: dbtest.UniqueName("cli_agg")}
	t.Cleanup(func() { _ = p.Drop(context.Background()) })
	require.NoError(t, dbtest.CreateDatabase(ctx, p.Source, ""))
	require.NoError(t, dbtest.CreateDatabase(ctx, p.Analytics, ""))

	addr := freePort(t)
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "AGG_TIMEZONE=Europe/Moscow"}
	c := cli{bin: binary(t), env: append(base,
		"SOURCE_DATABASE_URL="+p.SourceURL(), "ANALYTICS_DATABASE_URL="+p.AnalyticsURL(),
		"JWT_SECRET="+string(secret), "HTTP_ADDR="+addr, "REFRESH_INTERVAL=1s")}
	bare := cli{bin: c.bin, env: base}

	t.Run("bad input is one line and exit 1", func(t *testing.T) {
		for _, tc := range []struct {
			c    cli
			args []string
			want string
		}{
			{c, []string{"frobnicate"}, "unknown command"},
			{c, nil, "no command"},
			{c, []string{"seed", "--orders", "many"}, "invalid value"},
			{c, []string{"seed", "--merchants", "0"}, "--merchants"},
			{c, []string{"refresh", "--from", "2025-01-01"}, "go together"},
			{c, []string{"refresh", "--from", "2025-02-01", "--to", "2025-01-01"}, "after"},
			{c, []string{"refresh", "--from", "01/02/2025", "--to", "2025-01-01"}, "YYYY-MM-DD"},
			{c, []string{"token"}, "--merchant"},
			{c, []string{"source", "drop"}, "unknown source command"},
			{bare, []string{"migrate"}, "SOURCE_DATABASE_URL is not set"},
			{bare, []string{"serve"}, "ANALYTICS_DATABASE_URL is not set"},
			{cli{c.bin, append(base, "ANALYTICS_DATABASE_URL=postgres://nobody@127.0.0.1:1/x")}, []string{"refresh"}, "analytics database"},
			{cli{c.bin, append(base, "AGG_TIMEZONE=Mars/Olympus")}, []string{"migrate"}, "AGG_TIMEZONE"},
			{cli{c.bin, append(base, "JWT_SECRET=short")}, []string{"token", "--merchant", "1"}, "at least 32 bytes"},
			{cli{c.bin, append(base, "REFRESH_INTERVAL=soon")}, []string{"worker"}, "REFRESH_INTERVAL"},
			{cli{c.bin, append(base, "CHANGE_LOOKBACK=-1m")}, []string{"migrate"}, "CHANGE_LOOKBACK"},
			{cli{c.bin, append(base, "REFRESH_MAX_ATTEMPTS=0")}, []string{"worker"}, "REFRESH_MAX_ATTEMPTS"},
			{cli{c.bin, append(base, "WORKER_CONCURRENCY=lots")}, []string{"worker"}, "WORKER_CONCURRENCY"},
			{cli{c.bin, append(base, "RATE_LIMIT=-5")}, []string{"serve"}, "RATE_LIMIT"},
			{cli{c.bin, append(base, "ADMIN_RATE_BURST=0")}, []string{"serve"}, "ADMIN_RATE_BURST"},
			{cli{c.bin, append(base, "ADMISSION_WAIT=forever")}, []string{"serve"}, "ADMISSION_WAIT"},
			{c, []string{"serve"}, "run `merchantagg migrate` first"}, // never migrated
			{c, []string{"worker"}, "run `merchantagg migrate` first"},
			{c, []string{"reconcile", "--now"}, "flag provided but not defined"},
		} {
			_, stderr, code := tc.c.run(t, tc.args...)
			require.Equal(t, 1, code, "%v: %s", tc.args, stderr)
			require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
			require.Contains(t, stderr, tc.want)
		}
		// A connection error says each reason once (pgconn reports every attempt).
		_, stderr, _ := cli{c.bin, append(base, "ANALYTICS_DATABASE_URL=postgres://nobody@127.0.0.1:1/x")}.run(t, "refresh")
		require.Equal(t, 1, strings.Count(stderr, "connection refused"), stderr)
		out, _, code := c.run(t, "help")
		require.Zero(t, code)
		require.Contains(t, out, "usage: merchantagg")
		for _, flag := range []string{"--jobs N", "--max-products N", "--with-worker", "--ttl D"} {
			require.Contains(t, out, flag, "every flag is in the usage")
		}
	})

	t.Run("the whole pipeline", func(t *testing.T) {
		for _, args := range [][]string{
			{"source", "init"}, {"source", "init"},
			{"seed", "--merchants", "4", "--orders", "3000", "--seed", "3", "--from", "2025-01-01", "--to", "2025-06-30"},
			{"migrate"}, {"migrate"},
			{"refresh"},
			{"refresh", "--merchant", "2"},
			{"refresh", "--merchant", "1", "--from", "2025-03-01", "--to", "2025-03-31"},
			{"refresh", "--from", "2025-02-01", "--to", "2025-02-10"},
			{"reconcile"},
		} {
			out, stderr, code := c.run(t, args...)
			require.Zero(t, code, "%v: %s %s", args, out, stderr)
		}
		_, stderr, code := c.run(t, "seed", "--merchants", "4", "--orders", "10")
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "already has orders")

		tok, _, code := c.run(t, "token", "--merchant", "2", "--ttl", "1h")
		require.Zero(t, code)
		claims, err := auth.NewHMAC(secret).Verify(strings.TrimSpace(tok))
		require.NoError(t, err)
		require.Equal(t, int64(2), claims.MerchantID)
		require.Equal(t, auth.RoleMerchant, claims.Role)
	})

	t.Run("serve and worker refuse another schema version", func(t *testing.T) {
		an := dbtest.Pool(t, p.AnalyticsURL())
		want, err := schema.Version()
		require.NoError(t, err)
		setVersion := func(v int32) {
			_, err := an.Exec(ctx, "UPDATE "+schema.VersionTable+" SET version = $1", v)
			require.NoError(t, err)
		}
		defer setVersion(want)
		for _, v := range []int32{want - 1, want + 1} {
			setVersion(v)
			for _, cmd := range []string{"serve", "worker"} {
				_, stderr, code := c.run(t, cmd)
				require.Equal(t, 1, code, stderr)
				require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
				require.Contains(t, stderr, fmt.Sprintf("version %d", v))
				require.Contains(t, stderr, fmt.Sprint(want))
				if v < want {
					require.Contains(t, stderr, "run `merchantagg migrate`")
				}
				require.NotContains(t, stderr, "serving")
			}
		}
	})

	t.Run("a busy port fails before serving", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		busy := cli{c.bin, append(slices.Clone(c.env), "HTTP_ADDR="+ln.Addr().String())}
		_, stderr, code := busy.run(t, "serve", "--with-worker")
		require.Equal(t, 1, code, stderr)
		require.Contains(t, stderr, "address already in use")
		require.NotContains(t, stderr, "serving")
		require.NotContains(t, stderr, "River client started")
	})

	for _, tc := range []struct {
		name  string
		args  []string
		probe bool
	}{{"serve stops on SIGTERM", []string{"serve", "--with-worker"}, true}, {"worker stops on SIGTERM", []string{"worker"}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(c.bin, tc.args...)
			cmd.Env = c.env
			var logs bytes.Buffer
			cmd.Stderr = &logs
			require.NoError(t, cmd.Start())
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()

			if tc.probe {
				tok, _, _ := c.run(t, "token", "--merchant", "1")
				url := fmt.Sprintf("http://%s/v1/summary?from=2025-01-01&to=2025-06-30", addr)
				var status int
				for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(100 * time.Millisecond) {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(tok))
					if res, err := http.DefaultClient.Do(req); err == nil {
						body, _ := io.ReadAll(res.Body)
						res.Body.Close()
						status = res.StatusCode
						require.Equal(t, 200, status, string(body))
						require.Contains(t, string(body), `"merchant_id":1`)
						break
					}
				}
				require.Equal(t, 200, status, logs.String())
			} else {
				time.Sleep(2 * time.Second) // let it elect itself and run a scan
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			select {
			case err := <-done:
				require.NoError(t, err, "clean exit: %s", logs.String())
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("did not stop: %s", logs.String())
			}
			require.Contains(t, logs.String(), "shutting down")
		})
	}
}
