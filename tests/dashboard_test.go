package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/dbtest"
	"github.com/merchantagg/merchantagg/internal/refresh"
)

// browser starts Debian's headless Chromium for one test, with the flags a closed network
// and root need. Without Chromium the test fails: the dashboard is only tested in a browser.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1400, 1000))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The protocol library lags the browser by a few event fields (it logs each it cannot
	// decode); other errors are the test's.
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Log(msg)
		}
	}))
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTime(); cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Run(ctx), "start chromium")
	return ctx
}

// texts is the text of every element matching sel.
func texts(ctx context.Context, sel string) ([]string, error) {
	var out []string
	err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll(%q)].map(e => e.textContent)`, sel), &out))
	return out, err
}

// TestDashboardInABrowser logs in through the demo's link, and checks that the page shows the
// API's figures, switches the grain, sorts a breakdown, filters ABC, shows names with markup as
// text, and tells a bad token; then saves a screenshot.
func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	p := dbtest.Clone(t, template)
	src, an := dbtest.Pool(t, p.SourceURL()), dbtest.Pool(t, p.AnalyticsURL())
	const m, other = 1, 2
	const evil, quotes = `<script>alert(1)</script>`, `"Кавычки" & <теги> 🚀`
	mustExec(t, src, `UPDATE products SET name = $2 WHERE id = (SELECT min(id) FROM products WHERE merchant_id = $1)`, m, evil)
	mustExec(t, src, `UPDATE products SET name = $2 WHERE id = (SELECT max(id) FROM products WHERE merchant_id = $1)`, m, quotes)
	mustExec(t, src, `UPDATE merchants SET name = $2 WHERE id = $1`, m, evil)
	mustExec(t, src, `UPDATE merchants SET name = $2 WHERE id = $1`, other, quotes)
	_, err := refresh.New(an).RefreshChanged(context.Background(), nil)
	require.NoError(t, err)
	a := newAPI(t, p)
	ctx := browser(t)
	var mu sync.Mutex
	var dialogs []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			mu.Lock()
			dialogs = append(dialogs, d.Message)
			mu.Unlock()
		}
	})

	tok := token(t, m, auth.RoleMerchant)
	const from, to = "2025-01-01", "2025-12-31"
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(a.url+"/dashboard/#token="+tok+"&from="+from+"&to="+to),
		chromedp.WaitVisible(`#kpis .card[data-key="orders"]`),
		chromedp.WaitReady(`body[data-loaded]`),
	))

	t.Run("the token leaves the address bar", func(t *testing.T) {
		var href string
		require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(`location.href`, &href)))
		require.NotContains(t, href, "token")
		require.NotContains(t, href, tok)
	})

	t.Run("KPI cards hold the summary's values", func(t *testing.T) {
		var cards [][2]string
		require.NoError(t, chromedp.Run(ctx, chromedp.Evaluate(
			`[...document.querySelectorAll('#kpis .card, #customers .card')].map(c => [c.dataset.key, c.dataset.value])`, &cards)))
		status, body, _ := getRaw(t, a, "/v1/summary?from="+from+"&to="+to+"&compare=previous_year", tok, nil)
		require.Equal(t, 200, status)
		var s struct{ Metrics, Customers map[string]json.RawMessage }
		require.NoError(t, json.Unmarshal(body, &s))
		require.Len(t, cards, 15)
		for _, c := range cards {
			raw, ok := s.Metrics[c[0]]
			if !ok {
				raw = s.Customers[c[0]]
			}
			want := strings.Trim(string(raw), `"`)
			if want == "null" {
				want = ""
			}
			require.Equal(t, want, c[1], c[0])
		}
	})

	t.Run("the grain sets the chart's points", func(t *testing.T) {
		require.NoError(t, chromedp.Run(ctx,
			chromedp.SetValue(`#grain`, "month"),
			chromedp.Evaluate(`document.querySelector('#grain').dispatchEvent(new Event('change'))`, nil),
			chromedp.WaitReady(`#chart[data-points="12"] canvas`),
		))
	})

	t.Run("a breakdown sorts by a column", func(t *testing.T) {
		const tbl = `.breakdown[data-dimension="product"]`
		require.NoError(t, chromedp.Run(ctx,
			chromedp.Click(tbl+` th[data-sort="orders"]`),
			chromedp.WaitReady(tbl+` th.sorted[data-sort="orders"]`),
		))
		cells, err := texts(ctx, tbl+` td[data-col="orders"]`)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(cells), 2)
		n := func(s string) int { v, _ := strconv.Atoi(strings.ReplaceAll(s, ",", "")); return v }
		for i := 1; i < len(cells); i++ {
			require.GreaterOrEqual(t, n(cells[i-1]), n(cells[i]), "descending: %v", cells)
		}
	})

	t.Run("ABC filters to class B", func(t *testing.T) {
		require.NoError(t, chromedp.Run(ctx,
			chromedp.SetValue(`#abc-class`, "B"),
			chromedp.Evaluate(`document.querySelector('#abc-class').dispatchEvent(new Event('change'))`, nil),
			chromedp.Poll(`[...document.querySelectorAll('#abc tr[data-class]')].length > 0 &&
				[...document.querySelectorAll('#abc tr[data-class]')].every(r => r.dataset.class === 'B')`, nil),
		))
	})

	t.Run("names show as text", func(t *testing.T) {
		// By name ascending (a first click sorts descending): "<" and '"' come first.
		const th = `.breakdown[data-dimension="product"] th[data-sort="name"]`
		require.NoError(t, chromedp.Run(ctx, chromedp.Click(th), chromedp.WaitReady(`.breakdown[data-dimension="product"] th.sorted[data-sort="name"]`),
			chromedp.Click(th), chromedp.WaitReady(`.breakdown[data-dimension="product"] th.sorted.asc[data-sort="name"]`)))
		var found struct{ Evil, Quotes, Scripts int }
		require.NoError(t, chromedp.Run(ctx, chromedp.Poll(fmt.Sprintf(`(() => {
			const names = [...document.querySelectorAll('td.name, #who')].map(e => e.textContent);
			const r = {evil: names.filter(n => n.includes(%q)).length, quotes: names.filter(n => n.includes(%q)).length,
			           scripts: document.querySelectorAll('script').length};
			return r.evil > 1 && r.quotes > 0 ? r : null;
		})()`, evil, quotes), &found)))
		require.Greater(t, found.Evil, 1, "the product and the merchant named %s", evil)
		require.Equal(t, 2, found.Scripts, "only the page's own scripts")
		mu.Lock()
		require.Empty(t, dialogs, "no script from the data ran")
		mu.Unlock()
	})

	t.Run("screenshot", func(t *testing.T) {
		var png []byte
		require.NoError(t, chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)))
		require.True(t, bytes.HasPrefix(png, []byte("\x89PNG")))
		path := filepath.Join(t.TempDir(), "dashboard.png")
		if dir := os.Getenv("MERCHANTAGG_SCREENSHOT_DIR"); dir != "" {
			path = filepath.Join(dir, "dashboard.png")
		}
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("screenshot: %s", path)
	})

	t.Run("an admin picks a merchant", func(t *testing.T) {
		admin := token(t, 0, auth.RoleAdmin)
		var options []string
		require.NoError(t, chromedp.Run(ctx,
			chromedp.Navigate("about:blank"), // a new fragment alone would not load the page again
			chromedp.Navigate(a.url+"/dashboard/#token="+admin+"&from="+from+"&to="+to),
			chromedp.WaitReady(`#merchant-pick option`),
		))
		options, err := texts(ctx, `#merchant-pick option`)
		require.NoError(t, err)
		require.Contains(t, options, quotes+" (2)")
		require.Contains(t, options, evil+" (1)")
	})

	t.Run("a bad token is a message", func(t *testing.T) {
		require.NoError(t, chromedp.Run(ctx,
			chromedp.Evaluate(`sessionStorage.clear()`, nil),
			chromedp.Navigate("about:blank"),
			chromedp.Navigate(a.url+"/dashboard/#token=not-a-token"),
			chromedp.WaitVisible(`#messages .error`),
			chromedp.WaitVisible(`#login`),
		))
		msgs, err := texts(ctx, `#messages .error`)
		require.NoError(t, err)
		require.Contains(t, strings.Join(msgs, " "), "token is not valid")
	})
}

// TestDashboardHeaders: the page is served with a CSP that allows nothing but itself.
func TestDashboardHeaders(t *testing.T) {
	t.Parallel()
	a := newAPI(t, shared)
	for _, path := range []string{"/dashboard/", "/dashboard/app.js", "/dashboard/vendor/uPlot.iife.min.js"} {
		status, body, h := getRaw(t, a, path, "", nil)
		require.Equal(t, 200, status, path)
		require.Equal(t, "default-src 'self'", h.Get("Content-Security-Policy"), path)
		require.NotEmpty(t, body)
	}
	status, _, _ := getRaw(t, a, "/dashboard", "", nil)
	require.Equal(t, 301, status)
}
