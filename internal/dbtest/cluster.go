package dbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBin is where Debian's postgresql-15 package puts the server binaries.
const pgBin = "/usr/lib/postgresql/15/bin"

// Cluster is a private PostgreSQL server of one test (a primary, or a standby of one), on a
// free port with its data directory in a temporary directory: for the tests that stop,
// restart or replicate a server, which the shared one must never be.
type Cluster struct {
	Dir  string
	Port int
	tb   testing.TB
}

// NewCluster initialises and starts a private server, and stops it and removes its directory
// when the test ends.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c := newCluster(tb)
	c.run("initdb", "-D", c.Dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
	conf := "listen_addresses = '127.0.0.1'\nfsync = off\nshared_buffers = '64MB'\nmax_connections = 60\n" +
		"wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nunix_socket_directories = ''\n"
	c.appendConf(conf)
	c.Start()
	return c
}

// Standby builds a hot standby of c with pg_basebackup -R (streaming, trust over 127.0.0.1)
// and starts it on a port of its own.
func (c *Cluster) Standby() *Cluster {
	c.tb.Helper()
	s := newCluster(c.tb)
	c.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres", "-D", s.Dir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	s.Start()
	return s
}

func newCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		tb.Fatalf("PostgreSQL 15 server binaries are missing (%s): apt-get install postgresql-15", pgBin)
	}
	dir, err := os.MkdirTemp("", "merchantagg-cluster-")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{Dir: filepath.Join(dir, "data"), Port: freePort(tb), tb: tb}
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	// The server refuses to run as root: as root, the cluster belongs to the postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatal("running as root needs the postgres user to own a private cluster: ", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{dir, c.Dir} {
			if err := os.Chown(d, uid, gid); err != nil {
				tb.Fatal(err)
			}
		}
	}
	tb.Cleanup(func() {
		c.stop("immediate", false)
		_ = os.RemoveAll(dir)
	})
	return c
}

// URL is the URL of database name on this server.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.tb.Helper()
	c.run("pg_ctl", "-D", c.Dir, "-o", "-p "+strconv.Itoa(c.Port), "-l", filepath.Join(filepath.Dir(c.Dir), "log"), "-w", "-t", "60", "start")
}

// Stop stops the server, aborting its sessions (pg_ctl -m fast).
func (c *Cluster) Stop() {
	c.tb.Helper()
	c.stop("fast", true)
}

func (c *Cluster) stop(mode string, must bool) {
	cmd := c.command("pg_ctl", "-D", c.Dir, "-m", mode, "-w", "-t", "60", "stop")
	if out, err := cmd.CombinedOutput(); err != nil && must {
		c.tb.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
}

// WaitReplayed waits until standby s has replayed everything primary c has written so far.
func (c *Cluster) WaitReplayed(ctx context.Context, s *Cluster) error {
	lsn, err := scalar(ctx, c.URL("postgres"), "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		done, err := scalar(ctx, s.URL("postgres"), "SELECT (pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn)::text")
		if err != nil {
			return err
		}
		if done == "true" {
			return nil
		}
	}
	return fmt.Errorf("standby did not replay up to %s within 60 s", lsn)
}

func scalar(ctx context.Context, url, q string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	return v, conn.QueryRow(ctx, q).Scan(&v)
}

func (c *Cluster) appendConf(s string) {
	c.tb.Helper()
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(s)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		c.tb.Fatal(err)
	}
}

func (c *Cluster) run(bin string, args ...string) {
	c.tb.Helper()
	if out, err := c.command(bin, args...).CombinedOutput(); err != nil {
		c.tb.Fatalf("%s %s: %v: %s", bin, strings.Join(args, " "), err, out)
	}
}

func (c *Cluster) command(bin string, args ...string) *exec.Cmd {
	path := filepath.Join(pgBin, bin)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
