// Package config reads merchantagg's configuration from the environment, in one place.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Config is everything the commands read from the environment (SPEC §5).
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
	// ChangeLookback is how far behind the watermark the change scan looks again, to catch
	// transactions that committed after their updated_at.
	ChangeLookback time.Duration
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
		HTTPAddr:             envOr("HTTP_ADDR", ":8080"),
		Timezone:             envOr("AGG_TIMEZONE", "Europe/Moscow"),
	}
	var err error
	if c.RefreshInterval, err = duration("REFRESH_INTERVAL", "1m"); err != nil {
		return c, err
	}
	if c.ChangeLookback, err = duration("CHANGE_LOOKBACK", "5m"); err != nil {
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

func duration(name, def string) (time.Duration, error) {
	d, err := time.ParseDuration(envOr(name, def))
	if err != nil || d <= 0 {
		return 0, errors.New(name + ": want a positive duration such as 1m or 30s")
	}
	return d, nil
}
