package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/merchantagg/merchantagg/internal/auth"
)

// cacheKey is what a data response's ETag is made of, besides the merchant's data version:
// the merchant, the request (path and query, as validated) and its representation.
type cacheKey struct {
	merchant int64
	request  string
}

// cacheKeyOf is nil for a request whose answer is not cached: not a GET of figures (the
// freshness moves with every scan; who is looking and the merchant list are not figures), or
// no merchant to read (the request fails validation).
func cacheKeyOf(r *http.Request) *cacheKey {
	if r.Method != http.MethodGet || !isFigures(r.URL.Path) {
		return nil
	}
	c, ok := auth.FromContext(r.Context())
	if !ok {
		return nil
	}
	m := c.MerchantID
	if v := r.URL.Query().Get("merchant_id"); v != "" {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil || (c.Role != auth.RoleAdmin && id != c.MerchantID) {
			return nil // the handler answers it (400, 403)
		}
		m = id
	} else if c.Role == auth.RoleAdmin {
		return nil // an admin must name the merchant: a 400
	}
	repr := "json"
	if csvWanted(r.Context()) {
		repr = "csv"
	}
	return &cacheKey{merchant: m, request: r.URL.Path + "?" + r.URL.Query().Encode() + "#" + repr}
}

// tag is weak: a compressed body is another byte sequence of the same representation.
func (c *cacheKey) tag(version int64) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d\x00%d\x00%s", c.merchant, version, c.request)))
	return `W/"` + hex.EncodeToString(sum[:12]) + `"`
}

// matches is If-None-Match's weak comparison against tag.
func matches(ifNoneMatch, tag string) bool {
	opaque := strings.TrimPrefix(tag, "W/")
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == opaque {
			return true
		}
	}
	return false
}

// setCacheHeaders: a browser or a proxy may keep the answer for this user only, and must ask
// again (If-None-Match) before using it.
func setCacheHeaders(h http.Header) {
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Vary", "Authorization, Accept, Accept-Encoding")
}

func isFigures(path string) bool {
	switch path {
	case "/v1/summary", "/v1/timeseries", "/v1/abc", "/v1/customers", "/v1/customers/cohorts":
		return true
	}
	return strings.HasPrefix(path, "/v1/breakdown/")
}
