package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard page (internal/httpapi/dashboard): plain HTML, CSS and JavaScript with uPlot
// vendored (scripts/fetch-uplot.sh), embedded so that it works offline.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboard serves the page under /dashboard/. No inline script or style is allowed, nor any
// other origin: everything it loads is its own, and its data comes from this API.
func dashboard() http.Handler {
	sub, _ := fs.Sub(dashboardFiles, "dashboard")
	files := http.StripPrefix("/dashboard/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
