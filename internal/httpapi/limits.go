package httpapi

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"golang.org/x/time/rate"

	"github.com/merchantagg/merchantagg/internal/auth"
)

// Limits are the fair-use and load-shedding bounds of one serve process.
type Limits struct {
	// Rate and Burst are each merchant's token bucket (requests per second, and how many may
	// come at once); AdminRate and AdminBurst each admin's. A zero rate turns that limit off.
	Rate, AdminRate   float64
	Burst, AdminBurst int
	// InFlight bounds the data requests doing database work at once (0: no bound); a request
	// that cannot start within AdmissionWait is shed with 503.
	InFlight      int
	AdmissionWait time.Duration
}

// rateLimit gives each merchant (and each admin) its own token bucket, so that one runaway
// dashboard uses up its own budget and not the others'. Buckets live in this process: every
// serve has its own.
func rateLimit(l Limits) func(http.Handler) http.Handler {
	type bucket struct {
		lim  *rate.Limiter
		seen time.Time
	}
	type subject struct {
		merchant int64
		admin    bool
	}
	var (
		mu      sync.Mutex
		buckets = map[subject]*bucket{}
		swept   = time.Now()
	)
	take := func(c *auth.Claims) time.Duration {
		key := subject{merchant: c.MerchantID, admin: c.Role == auth.RoleAdmin}
		r, b := l.Rate, l.Burst
		if key.admin {
			r, b = l.AdminRate, l.AdminBurst
		}
		if r <= 0 {
			return 0
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if now.Sub(swept) > time.Minute { // forget idle merchants: a full bucket needs no memory
			for k, v := range buckets {
				if now.Sub(v.seen) > time.Minute {
					delete(buckets, k)
				}
			}
			swept = now
		}
		bk := buckets[key]
		if bk == nil {
			bk = &bucket{lim: rate.NewLimiter(rate.Limit(r), max(b, 1))}
			buckets[key] = bk
		}
		bk.seen = now
		res := bk.lim.ReserveN(now, 1)
		if d := res.DelayFrom(now); d > 0 {
			res.CancelAt(now)
			return d
		}
		return 0
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, ok := auth.FromContext(r.Context()); ok {
				if wait := take(c); wait > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
					writeProblem(w, r, problem(http.StatusTooManyRequests, codeRateLimited, "",
						"too many requests for this merchant; retry after the time in Retry-After"))
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// admit bounds the requests doing database work at once. Past the bound a request waits at
// most l.AdmissionWait for a slot, then is answered 503: under overload clients get a fast
// answer to retry, instead of queueing in the pool until they give up.
func admit(l Limits, log *slog.Logger) func(http.Handler) http.Handler {
	if l.InFlight <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	slots := make(chan struct{}, l.InFlight)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case slots <- struct{}{}:
			default:
				ctx, cancel := context.WithTimeout(r.Context(), l.AdmissionWait)
				select {
				case slots <- struct{}{}:
					cancel()
				case <-ctx.Done():
					cancel()
					if r.Context().Err() != nil {
						return // the client left
					}
					log.Warn("request shed", "request_id", middleware.GetReqID(r.Context()), "path", r.URL.Path, "in_flight", l.InFlight)
					w.Header().Set("Retry-After", "1")
					writeProblem(w, r, problem(http.StatusServiceUnavailable, codeOverloaded, "",
						"the service is at capacity; retry after the time in Retry-After"))
					return
				}
			}
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		})
	}
}
