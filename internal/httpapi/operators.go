package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/db"
	"github.com/merchantagg/merchantagg/internal/metrics"
)

// uiCookie carries an admin's token for River UI, whose browser requests cannot set headers.
const uiCookie = "merchantagg_admin"

// bearerToken returns the request's bearer token, if any.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		token, ok = strings.CutPrefix(h, "bearer ")
	}
	return strings.TrimSpace(token), ok
}

// adminOnly guards an operator UI: an admin token as bearer or cookie passes; a merchant
// token gets 403, none or a bad one 401. Opening `<prefix>/?token=<jwt>` once sets the cookie
// (HttpOnly, SameSite=Strict, scoped to the prefix, expiring with the token) and redirects to
// the same URL without the token, so it does not linger in the address bar or history.
func adminOnly(v *auth.Verifier, prefix string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		token, fromQuery := q.Get("token"), true
		if token == "" {
			fromQuery = false
			var ok bool
			if token, ok = bearerToken(r); !ok {
				if c, err := r.Cookie(uiCookie); err == nil {
					token = c.Value
				}
			}
		}
		c, err := v.Verify(token)
		if token == "" || err != nil {
			writeProblem(w, r, problem(http.StatusUnauthorized, codeUnauthorized, "", "an admin token is required (open "+prefix+"/?token=<admin JWT>)"))
			return
		}
		if c.Role != auth.RoleAdmin {
			writeProblem(w, r, problem(http.StatusForbidden, codeForbidden, "", "an admin token is required"))
			return
		}
		if fromQuery {
			cookie := &http.Cookie{Name: uiCookie, Value: token, Path: prefix, HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
			if c.ExpiresAt != nil {
				cookie.Expires = c.ExpiresAt.Time
			}
			http.SetCookie(w, cookie)
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// observeRequests records each request's latency by chi route pattern.
func observeRequests(m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			route := "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
				route = rc.RoutePattern()
			}
			m.HTTPDuration.WithLabelValues(route, r.Method, strconv.Itoa(ww.Status())).Observe(time.Since(start).Seconds())
		})
	}
}

// asOfHeader is set on every data response: the source instant up to which its figures are
// complete, read in the same database snapshot as the figures (db.AsMerchant).
const asOfHeader = "X-Data-As-Of"

// stamp arranges for the handler's read to record its as-of time and the merchant's data
// version, and writes them as headers (X-Data-As-Of, and the ETag of a cacheable response)
// before the status line goes out. A conditional request whose tag is current is answered 304
// after reading the version alone.
func stamp(versions func(context.Context, int64) (int64, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c := cacheKeyOf(r)
			if c != nil {
				setCacheHeaders(w.Header())
				if inm := r.Header.Get("If-None-Match"); inm != "" {
					if v, err := versions(r.Context(), c.merchant); err == nil && matches(inm, c.tag(v)) {
						w.Header().Set("ETag", c.tag(v))
						w.WriteHeader(http.StatusNotModified)
						return
					} // else answered in full (a failed read fails again there, with its error)
				}
			}
			ctx, asOf := db.WithAsOf(r.Context())
			next.ServeHTTP(&asOfWriter{ResponseWriter: w, asOf: asOf, cache: c}, r.WithContext(ctx))
		})
	}
}

type asOfWriter struct {
	http.ResponseWriter
	asOf        *db.AsOf
	cache       *cacheKey
	wroteHeader bool
}

func (w *asOfWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		if code < 300 && w.asOf.Time != nil {
			w.Header().Set(asOfHeader, w.asOf.Time.UTC().Format(time.RFC3339Nano))
		}
		if code == http.StatusOK && w.cache != nil {
			w.Header().Set("ETag", w.cache.tag(w.asOf.Version))
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *asOfWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}
