package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// run is a finished merchantagg process.
type run struct {
	seconds, rssMiB float64
}

// runBin runs the binary to completion and reports its wall time and peak memory.
func runBin(ctx context.Context, bin string, env []string, args ...string) (run, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return run{}, fmt.Errorf("merchantagg %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return run{seconds: time.Since(start).Seconds(), rssMiB: peakRSS(cmd)}, nil
}

// peakRSS is a finished process's maximum resident set in MiB (Linux reports KiB).
func peakRSS(cmd *exec.Cmd) float64 {
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024
	}
	return 0
}

// server is a running `merchantagg serve`.
type server struct {
	cmd     *exec.Cmd
	url     string
	logs    bytes.Buffer
	done    chan error
	stopped bool
}

// startServe starts serve with args on a free port and waits until /readyz answers.
func startServe(ctx context.Context, bin string, env []string, args ...string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{url: "http://" + addr, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	s.cmd.Env = append(append([]string{}, env...), "HTTP_ADDR="+addr)
	s.cmd.Stderr = &s.logs
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start serve: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("serve exited: %v: %s", err, s.logs.String())
		case <-ctx.Done():
			_ = s.cmd.Process.Kill()
			return nil, ctx.Err()
		default:
		}
		if res, err := http.Get(s.url + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
	_ = s.cmd.Process.Kill()
	return nil, fmt.Errorf("serve did not get ready: %s", s.logs.String())
}

// stop sends SIGTERM, waits, and returns the process's peak memory in MiB. Stopping again
// (a deferred stop after an explicit one) only reports the same figure.
func (s *server) stop() (float64, error) {
	if s.stopped {
		return peakRSS(s.cmd), nil
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return 0, fmt.Errorf("serve did not stop: %s", s.logs.String())
	}
	return peakRSS(s.cmd), nil
}
