// Package config reads merchantagg's configuration from the environment, in one place.
package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"
)

// Config is everything the commands read from the environment (the README's configuration table).
type Config struct {
	SourceDatabaseURL    string
	AnalyticsDatabaseURL string
	JWTSecret            string
	// JWTPublicKeyFile, when set, verifies RS256/ES256 tokens with this PEM public key instead of
	// HS256 with JWTSecret.
	JWTPublicKeyFile string
	HTTPAddr         string
	Timezone         string
	RefreshInterval  time.Duration
	// ReadDatabaseURL, when set, is where the API reads aggregates (a replica); the pipeline
	// always writes to AnalyticsDatabaseURL.
	ReadDatabaseURL string
	// ChangeLookback is an extra margin behind the watermark for writers that stamp updated_at
	// with their own clock; ChangeMaxTxnAge bounds how long one open source transaction can
	// hold the change scan's horizon back (sql/code/scan.sql).
	ChangeLookback  time.Duration
	ChangeMaxTxnAge time.Duration
	// RefreshJobTimeout cancels a refresh job that runs longer; RefreshStatementTimeout bounds
	// one refresh transaction, after which the retry splits the merchant's days.
	RefreshJobTimeout       time.Duration
	RefreshStatementTimeout time.Duration
	RefreshMaxAttempts      int
	ReconcileInterval       time.Duration
	WorkerConcurrency       int
	// MetricsAddr, when set, serves /metrics from a `worker` process (serve has it on HTTP_ADDR).
	MetricsAddr string
	// RateLimit and RateBurst are each merchant's request budget in one serve process
	// (requests per second, and at once); AdminRateLimit and AdminRateBurst each admin's. A
	// zero rate turns the limit off. AdmissionWait is how long a data request may wait for
	// the database before it is shed with 503.
	RateLimit, AdminRateLimit float64
	RateBurst, AdminRateBurst int
	AdmissionWait             time.Duration
}

// minSecretLen is the shortest JWT_SECRET accepted: HS256's hash length.
const minSecretLen = 32

// FromEnv reads the configuration with defaults for optional settings. It does not validate;
// each command checks what it needs with Require*.
func FromEnv() (Config, error) {
	c := Config{
		SourceDatabaseURL:    os.Getenv("SOURCE_DATABASE_URL"),
		AnalyticsDatabaseURL: os.Getenv("ANALYTICS_DATABASE_URL"),
		JWTSecret:            os.Getenv("JWT_SECRET"),
		JWTPublicKeyFile:     os.Getenv("JWT_PUBLIC_KEY_FILE"),
		ReadDatabaseURL:      os.Getenv("ANALYTICS_READ_DATABASE_URL"),
		MetricsAddr:          os.Getenv("METRICS_ADDR"),
		HTTPAddr:             envOr("HTTP_ADDR", ":8080"),
		Timezone:             envOr("AGG_TIMEZONE", "Europe/Moscow"),
	}
	durations := []struct {
		name, def string
		dst       *time.Duration
		zeroOK    bool
	}{
		{"REFRESH_INTERVAL", "1m", &c.RefreshInterval, false},
		{"CHANGE_LOOKBACK", "0s", &c.ChangeLookback, true},
		{"CHANGE_MAX_TXN_AGE", "1h", &c.ChangeMaxTxnAge, false},
		{"REFRESH_JOB_TIMEOUT", "30m", &c.RefreshJobTimeout, false},
		{"REFRESH_STATEMENT_TIMEOUT", "10m", &c.RefreshStatementTimeout, false},
		{"RECONCILE_INTERVAL", "1h", &c.ReconcileInterval, false},
		{"ADMISSION_WAIT", "1s", &c.AdmissionWait, false},
	}
	for _, d := range durations {
		v, err := duration(d.name, d.def, d.zeroOK)
		if err != nil {
			return c, err
		}
		*d.dst = v
	}
	// A dashboard page sends ~15 requests at once and a few pages a second are a person
	// clicking through presets: the rate defaults admit that, and stop a script looping at
	// full speed.
	ints := []struct {
		name string
		def  int
		dst  *int
	}{
		{"REFRESH_MAX_ATTEMPTS", 10, &c.RefreshMaxAttempts},
		{"WORKER_CONCURRENCY", 4, &c.WorkerConcurrency},
		{"RATE_BURST", 100, &c.RateBurst},
		{"ADMIN_RATE_BURST", 1000, &c.AdminRateBurst},
	}
	for _, n := range ints {
		v, err := positiveInt(n.name, n.def)
		if err != nil {
			return c, err
		}
		*n.dst = v
	}
	var err error
	if c.RateLimit, err = rateOf("RATE_LIMIT", 50); err != nil {
		return c, err
	}
	if c.AdminRateLimit, err = rateOf("ADMIN_RATE_LIMIT", 500); err != nil {
		return c, err
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return c, fmt.Errorf("AGG_TIMEZONE: unknown time zone %q", c.Timezone)
	}
	return c, nil
}

// Location returns the business time zone (validated by FromEnv).
func (c Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Require checks that the named settings are present and names the first one missing.
func (c Config) Require(names ...string) error {
	vals := map[string]string{
		"SOURCE_DATABASE_URL":    c.SourceDatabaseURL,
		"ANALYTICS_DATABASE_URL": c.AnalyticsDatabaseURL,
		"JWT_SECRET":             c.JWTSecret,
	}
	for _, n := range names {
		if n == "JWT_SECRET" && c.JWTPublicKeyFile != "" {
			continue
		}
		if vals[n] == "" {
			return fmt.Errorf("%s is not set", n)
		}
		if n == "JWT_SECRET" && len(c.JWTSecret) < minSecretLen {
			return fmt.Errorf("JWT_SECRET must be at least %d bytes (an HS256 key shorter than its hash is guessable)", minSecretLen)
		}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func duration(name, def string, zeroOK bool) (time.Duration, error) {
	d, err := time.ParseDuration(envOr(name, def))
	switch {
	case err != nil || d < 0:
		return 0, errors.New(name + ": want a duration such as 1m or 30s")
	case d == 0 && !zeroOK:
		return 0, errors.New(name + ": want a positive duration such as 1m or 30s")
	}
	return d, nil
}

func positiveInt(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s: want a positive integer, got %q", name, v)
	}
	return n, nil
}

func rateOf(name string, def float64) (float64, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%s: want requests per second (0 turns the limit off), got %q", name, v)
	}
	return f, nil
}
