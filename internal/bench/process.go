package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
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
	if err := cmd.Start(); err != nil {
		return run{}, fmt.Errorf("merchantagg %s: %w", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak float64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return run{}, fmt.Errorf("merchantagg %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
			}
			return run{seconds: time.Since(start).Seconds(), rssMiB: peak}, nil
		case <-tick.C:
			peak = max(peak, peakRSS(cmd.Process.Pid))
		}
	}
}

// peakRSS is a running process's peak resident set (VmHWM) in MiB, 0 once it is gone.
// Not getrusage's ru_maxrss of the finished child: Linux carries the parent's peak over
// exec into it, so every child reported the benchmark's own memory (978 MiB after seeding
// 10M orders in-process).
func peakRSS(pid int) float64 { return procStatus(pid, "VmHWM:") }

// procStatus is one kB line of a process's /proc status, in MiB (0 when unreadable).
func procStatus(pid int, name string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return field(string(b), name) / 1024
}

// field is the value of a "Name:  123 kB" line of a /proc file, in kB (0 when missing).
func field(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			kib, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0
			}
			return kib
		}
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
	peak    float64 // MiB, read at stop
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

// stop reads the process's peak memory in MiB, sends SIGTERM and waits. Stopping again (a
// deferred stop after an explicit one) only reports the same figure.
func (s *server) stop() (float64, error) {
	if s.stopped {
		return s.peak, nil
	}
	s.stopped = true
	s.peak = peakRSS(s.cmd.Process.Pid)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return 0, fmt.Errorf("serve did not stop: %s", s.logs.String())
	}
	return s.peak, nil
}
