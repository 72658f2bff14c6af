// Package httpapi serves merchantagg's REST API: the generated strict handlers behind JWT
// authentication and kin-openapi request validation, plus docs, the spec and health checks.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	kflate "github.com/klauspost/compress/flate"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/swaggest/swgui/v5emb"

	"github.com/merchantagg/merchantagg"
	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/metrics"
	"github.com/merchantagg/merchantagg/internal/stats"
)

// Options are the router's collaborators.
type Options struct {
	Reader   *stats.Reader
	Verifier *auth.Verifier
	// Ready reports whether the service can answer (the analytics database is reachable).
	Ready  func(context.Context) error
	Logger *slog.Logger
	// Backfill serves POST /v1/admin/refresh; RiverUI, when set, is mounted at /riverui/ for
	// admins; Metrics, when set, is served at /metrics and records request latencies.
	Backfill Backfiller
	RiverUI  http.Handler
	Metrics  *metrics.Metrics
	// Limits are the per-merchant rate limits and the admission bound (zero: none).
	Limits Limits
}

// NewRouter builds the whole HTTP surface.
func NewRouter(o Options) (http.Handler, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, fmt.Errorf("load embedded spec: %w", err)
	}
	validate, err := validator(spec)
	if err != nil {
		return nil, err
	}

	r := chi.NewRouter()
	r.Use(middleware.RequestID, logRequests(o.Logger), recoverer(o.Logger))
	if o.Metrics != nil {
		r.Use(observeRequests(o.Metrics))
		r.Handle("/metrics", o.Metrics.Handler())
	}
	if o.RiverUI != nil {
		ui := adminOnly(o.Verifier, "/riverui", o.RiverUI)
		r.Handle("/riverui", ui)
		r.Handle("/riverui/*", ui)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problem(http.StatusNotFound, codeNotFound, "", "no such resource"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problem(http.StatusMethodNotAllowed, codeNotFound, "", "method not allowed"))
	})

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := o.Ready(ctx); err != nil {
			o.Logger.Warn("not ready", "err", err)
			writeProblem(w, r, problem(http.StatusServiceUnavailable, codeInternal, "", "analytics database unreachable"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	r.Get("/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(merchantagg.OpenAPIYAML)
	})
	r.Get("/dashboard", http.RedirectHandler("/dashboard/", http.StatusMovedPermanently).ServeHTTP)
	r.Handle("/dashboard/*", dashboard())
	docs := v5emb.New("merchantagg API", "/openapi.yaml", "/docs/")
	r.Get("/docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently).ServeHTTP)
	r.Handle("/docs/*", docs)

	strict := gen.NewStrictHandlerWithOptions(&handlers{reader: o.Reader, backfill: o.Backfill}, nil, gen.StrictHTTPServerOptions{
		RequestErrorHandlerFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			writeProblem(w, r, badParam("", "invalid request"))
		},
		ResponseErrorHandlerFunc: internalError(o.Logger),
	})
	r.Group(func(r chi.Router) {
		r.Use(compress())
		r.Use(authenticate(o.Verifier), rateLimit(o.Limits), admit(o.Limits, o.Logger))
		r.Use(negotiate, validate, stamp(o.Reader.DataVersion)) // negotiate first: validation fills in defaults
		gen.HandlerWithOptions(strict, gen.ChiServerOptions{
			BaseRouter:       r,
			ErrorHandlerFunc: paramError,
		})
	})
	return r, nil
}

// authenticate requires a valid bearer token and stores its claims in the request context.
func authenticate(v *auth.Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			token, ok := bearerToken(r)
			var c *auth.Claims
			var err error
			if ok {
				c, err = v.Verify(token)
			}
			if !ok || err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="merchantagg"`)
				writeProblem(w, r, problem(http.StatusUnauthorized, codeUnauthorized, "", "a valid bearer token is required"))
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithClaims(r.Context(), c)))
		})
	}
}

// paramError maps the generated binder's errors (after validation these are rare) to 400.
func paramError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		inv *gen.InvalidParamFormatError
		req *gen.RequiredParamError
		unm *gen.UnmarshalingParamError
		tmv *gen.TooManyValuesForParamError
	)
	name := ""
	switch {
	case errors.As(err, &inv):
		name = inv.ParamName
	case errors.As(err, &req):
		name = req.ParamName
	case errors.As(err, &unm):
		name = unm.ParamName
	case errors.As(err, &tmv):
		name = tmv.ParamName
	}
	writeProblem(w, r, badParam(name, fmt.Sprintf("parameter %q is invalid", name)))
}

// internalError logs an unexpected error with the request id and answers a bare 500.
func internalError(log *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			log.Info("request cancelled by client", "request_id", middleware.GetReqID(r.Context()))
			return
		}
		if errors.Is(err, db.ErrTimeout) {
			// The read hit the API's statement timeout: the server is overloaded or the range is
			// too heavy, not broken. 503 tells clients to retry later, as load balancers expect.
			log.Warn("request timed out", "request_id", middleware.GetReqID(r.Context()), "path", r.URL.Path, "query", r.URL.RawQuery)
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, problem(http.StatusServiceUnavailable, codeTimeout, "", "the figures took too long to compute; retry later or ask for a shorter range"))
			return
		}
		if errors.Is(err, db.ErrUnavailable) {
			// The database is down or restarting: the pool reconnects by itself once it is back.
			log.Warn("analytics database unavailable", "request_id", middleware.GetReqID(r.Context()), "path", r.URL.Path, "err", err)
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, problem(http.StatusServiceUnavailable, codeUnavailable, "", "the analytics database is unavailable; retry later"))
			return
		}
		log.Error("request failed", "request_id", middleware.GetReqID(r.Context()), "path", r.URL.Path, "err", err)
		writeProblem(w, r, problem(http.StatusInternalServerError, codeInternal, "", "internal error"))
	}
}

func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					internalError(log)(w, r, fmt.Errorf("panic: %v", v))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// logRequests writes one structured line per request. Headers are not logged (Authorization
// carries the token), nor is River UI's ?token= login parameter.
func logRequests(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			query := r.URL.RawQuery
			if q := r.URL.Query(); q.Has("token") {
				q.Set("token", "REDACTED")
				query = q.Encode()
			}
			log.Info("request", "request_id", middleware.GetReqID(r.Context()), "method", r.Method,
				"path", r.URL.Path, "query", query, "status", ww.Status(),
				"duration_ms", float64(time.Since(start).Microseconds())/1000)
		})
	}
}

// compress answers gzip, deflate or brotli when the client asks (chi's compressor; gzip and
// deflate by klauspost/compress, brotli by andybalholm/brotli), for the API's JSON, problems
// and CSV. Level 1, the fastest: API JSON is repetitive enough to shrink several times even
// so, and a higher level costs a large answer (a year's daily series) milliseconds of CPU for
// a few kilobytes. The standard library's deflate was the largest part of such an answer's CPU.
func compress() func(http.Handler) http.Handler {
	c := middleware.NewCompressor(1, "application/json", "application/problem+json", "text/csv")
	c.SetEncoder("gzip", func(w io.Writer, level int) io.Writer {
		gw, err := kgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil
		}
		return gw
	})
	c.SetEncoder("deflate", func(w io.Writer, level int) io.Writer {
		fw, err := kflate.NewWriter(w, level)
		if err != nil {
			return nil
		}
		return fw
	})
	c.SetEncoder("br", func(w io.Writer, level int) io.Writer { return brotli.NewWriterLevel(w, level) })
	return c.Handler
}
