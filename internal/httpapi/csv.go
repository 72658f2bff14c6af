package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/period"
)

// maxExportRows bounds a CSV export without paging (docs/metrics.md, Export).
const maxExportRows = 100_000

type csvKey struct{}

// export is what negotiate notes of a request that asks for CSV.
type export struct {
	unpaged bool // neither page nor page_size: every row
}

// negotiate notes in the request's context whether it asks for CSV: format=csv, or an Accept
// header that lists text/csv before application/json. Paging is read off the query itself
// (the parameters carry their defaults by the time the handler sees them).
func negotiate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wantsCSV(r) {
			q := r.URL.Query()
			e := &export{unpaged: !q.Has("page") && !q.Has("page_size")}
			r = r.WithContext(context.WithValue(r.Context(), csvKey{}, e))
		}
		next.ServeHTTP(w, r)
	})
}

func wantsCSV(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "csv":
		return true
	case "json":
		return false
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/csv":
			return true
		case "application/json", "application/*", "*/*":
			return false
		}
	}
	return false
}

func csvWanted(ctx context.Context) bool { _, ok := ctx.Value(csvKey{}).(*export); return ok }

// exportPage is a list's page for a CSV export: every row (up to maxExportRows) unless the
// request pages.
func exportPage(ctx context.Context, pg, size *int64) (number, pageSize, offset int64) {
	if e, ok := ctx.Value(csvKey{}).(*export); ok && e.unpaged {
		return 1, maxExportRows, 0
	}
	return page(pg, size)
}

// csvResponse is a CSV export, the typed 200 response of the four lists that offer one.
type csvResponse struct {
	name string
	body []byte
}

func (c csvResponse) write(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, c.name))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(c.body)
	return err
}

func (c csvResponse) VisitGetTimeseriesResponse(w http.ResponseWriter) error { return c.write(w) }
func (c csvResponse) VisitGetBreakdownResponse(w http.ResponseWriter) error  { return c.write(w) }
func (c csvResponse) VisitGetABCResponse(w http.ResponseWriter) error        { return c.write(w) }
func (c csvResponse) VisitGetCohortsResponse(w http.ResponseWriter) error    { return c.write(w) }

// table builds a CSV document row by row.
type table struct {
	buf bytes.Buffer
	w   *csv.Writer
	err error
}

func newTable(header ...[]string) *table {
	t := &table{}
	t.w = csv.NewWriter(&t.buf)
	t.w.UseCRLF = true // RFC 4180
	t.row(header...)
	return t
}

func (t *table) row(parts ...[]string) {
	var rec []string
	for _, p := range parts {
		rec = append(rec, p...)
	}
	if t.err == nil {
		t.err = t.w.Write(rec)
	}
}

func (t *table) done(name string) (csvResponse, error) {
	t.w.Flush()
	if t.err == nil {
		t.err = t.w.Error()
	}
	return csvResponse{name: name, body: t.buf.Bytes()}, t.err
}

// text is a cell of free text (a name, a sku, a label). One that a spreadsheet would run as a
// formula (=, +, -, @ first) gets a leading quote, unless it is a number (OWASP CSV injection).
func text(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "'" + s
		}
	}
	return s
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func f64(p *float64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'f', -1, 64)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ymd(d period.DateOnly) string { return d.Format("2006-01-02") }

func prefixed(prefix string, cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = prefix + c
	}
	return out
}

var metricCols = []string{"orders", "accepted", "delivered", "cancelled", "returned", "items", "gmv",
	"returned_amount", "revenue", "aov", "cancel_rate", "return_rate", "avg_delivery_hours"}

func metricCells(m gen.Metrics) []string {
	return []string{i64(m.Orders), i64(m.Accepted), i64(m.Delivered), i64(m.Cancelled), i64(m.Returned), i64(m.Items),
		m.Gmv, m.ReturnedAmount, m.Revenue, str(m.Aov), f64(m.CancelRate), f64(m.ReturnRate), f64(m.AvgDeliveryHours)}
}

var customerCols = []string{"customers", "new_customers", "returning_customers", "repeat_rate", "orders_per_customer",
	"gmv_per_customer"}

func customerCells(c gen.CustomerMetrics) []string {
	return []string{i64(c.Customers), i64(c.NewCustomers), i64(c.ReturningCustomers), f64(c.RepeatRate),
		f64(c.OrdersPerCustomer), str(c.GmvPerCustomer)}
}

var changeCols = append(append([]string{}, metricCols...), "customers", "new_customers", "returning_customers", "repeat_rate")

func changeCells(c *gen.Change) []string {
	if c == nil {
		return make([]string, len(changeCols))
	}
	return []string{f64(c.Orders), f64(c.Accepted), f64(c.Delivered), f64(c.Cancelled), f64(c.Returned), f64(c.Items),
		f64(c.Gmv), f64(c.ReturnedAmount), f64(c.Revenue), f64(c.Aov), f64(c.CancelRate), f64(c.ReturnRate),
		f64(c.AvgDeliveryHours), f64(c.Customers), f64(c.NewCustomers), f64(c.ReturningCustomers), f64(c.RepeatRate)}
}

// breakdownCSV: one row per key.
func breakdownCSV(b gen.Breakdown) (csvResponse, error) {
	t := newTable([]string{"key", "name", "share", "parent_id", "has_children"}, metricCols)
	for _, r := range b.Rows {
		parent, children := "", ""
		if r.ParentId != nil {
			parent = i64(*r.ParentId)
		}
		if r.HasChildren != nil {
			children = strconv.FormatBool(*r.HasChildren)
		}
		t.row([]string{text(r.Key), text(r.Name), f64(r.Share), parent, children}, metricCells(r.Metrics))
	}
	return t.done("breakdown-" + b.Dimension)
}

// abcCSV: the product rows (the class totals stay in the JSON).
func abcCSV(a gen.ABC) (csvResponse, error) {
	t := newTable([]string{"rank", "product_id", "sku", "name", "value", "share", "cumulative_share", "class"})
	for _, p := range a.Products {
		t.row([]string{i64(p.Rank), i64(p.ProductId), text(p.Sku), text(p.Name), p.Value, f64(&p.Share),
			f64(&p.CumulativeShare), string(p.Class)})
	}
	return t.done("abc")
}

// timeseriesCSV: one row per point; with a comparison, the compared window's figures and the
// change in columns prefixed compare_ and change_.
func timeseriesCSV(s gen.Timeseries) (csvResponse, error) {
	header := [][]string{{"period", "from", "to"}, metricCols, customerCols}
	if s.Compare != nil {
		header = append(header, []string{"compare_from", "compare_to"}, prefixed("compare_", metricCols),
			prefixed("compare_", customerCols), prefixed("change_", changeCols))
	}
	t := newTable(header...)
	for _, p := range s.Points {
		row := [][]string{{ymd(p.Period), ymd(p.From), ymd(p.To)}, metricCells(p.Metrics), customerCells(p.Customers)}
		if c := p.Compare; c != nil {
			row = append(row, []string{ymd(c.From), ymd(c.To)}, metricCells(c.Metrics), customerCells(c.Customers), changeCells(p.Change))
		}
		t.row(row...)
	}
	return t.done("timeseries")
}

// drilledTimeseriesCSV is timeseriesCSV without customer figures.
func drilledTimeseriesCSV(s gen.DrilledTimeseries) (csvResponse, error) {
	header := [][]string{{"period", "from", "to"}, metricCols}
	if s.Compare != nil {
		header = append(header, []string{"compare_from", "compare_to"}, prefixed("compare_", metricCols),
			prefixed("change_", metricCols))
	}
	t := newTable(header...)
	for _, p := range s.Points {
		row := [][]string{{ymd(p.Period), ymd(p.From), ymd(p.To)}, metricCells(p.Metrics)}
		if c := p.Compare; c != nil {
			row = append(row, []string{ymd(c.From), ymd(c.To)}, metricCells(c.Metrics), changeCells(p.Change)[:len(metricCols)])
		}
		t.row(row...)
	}
	return t.done("timeseries-" + string(s.Filter.Dimension))
}

// cohortsCSV: long format, one row per cohort and month offset.
func cohortsCSV(c gen.Cohorts) (csvResponse, error) {
	t := newTable([]string{"cohort", "offset", "customers", "share"})
	for _, co := range c.Cohorts {
		for k, share := range co.Retention {
			t.row([]string{ymd(co.Cohort), strconv.Itoa(k), i64(co.Customers), f64(&share)})
		}
	}
	return t.done("cohorts")
}
