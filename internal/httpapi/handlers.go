package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/auth"
	"github.com/merchantagg/merchantagg/internal/period"
	"github.com/merchantagg/merchantagg/internal/stats"
)

// maxRangeYears bounds a range (docs/metrics.md, Days and ranges).
const maxRangeYears = 3

// maxBackfillYears bounds an admin refresh: a longer one is a typo, not a backfill.
const maxBackfillYears = 20

// Backfiller queues a refresh of a merchant's business days [from, to] and returns the job id.
type Backfiller interface {
	Backfill(ctx context.Context, merchantID int64, from, to time.Time) (jobID int64, err error)
}

// handlers implements the generated strict server interface.
type handlers struct {
	reader   *stats.Reader
	backfill Backfiller
}

var _ gen.StrictServerInterface = (*handlers)(nil)

// scope is what every range endpoint resolves first: who, when and which statuses.
type scope struct {
	merchantID int64
	from, to   time.Time
	statuses   []gen.OrderStatus
}

// resolve checks the parameters every range endpoint shares against the caller's token.
func resolve(ctx context.Context, from, to period.DateOnly, merchantID *int64, status *[]gen.OrderStatus) (scope, *Problem) {
	c, ok := auth.FromContext(ctx)
	if !ok { // the auth middleware runs first; this is a wiring error
		return scope{}, problem(http.StatusUnauthorized, codeUnauthorized, "", "missing credentials")
	}
	sc := scope{from: period.Date(from.Time), to: period.Date(to.Time), statuses: stats.AllStatuses}
	var prob *Problem
	if sc.merchantID, prob = whom(c, merchantID); prob != nil {
		return sc, prob
	}
	if sc.from.After(sc.to) {
		return sc, badParam("from", "from is after to")
	}
	if sc.to.After(sc.from.AddDate(maxRangeYears, 0, -1)) {
		return sc, badParam("to", fmt.Sprintf("the range may span at most %d years", maxRangeYears))
	}
	if status != nil {
		// Canonical order, no duplicates: the response lists what was kept.
		sc.statuses = slices.DeleteFunc(slices.Clone(stats.AllStatuses), func(s gen.OrderStatus) bool {
			return !slices.Contains(*status, s)
		})
	}
	return sc, nil
}

// whom is the merchant a request reads: its token's, or for an admin the one it names.
func whom(c *auth.Claims, merchantID *int64) (int64, *Problem) {
	switch {
	case c.Role == auth.RoleAdmin && merchantID == nil:
		return 0, badParam("merchant_id", "merchant_id is required with an admin token")
	case c.Role == auth.RoleAdmin:
		return *merchantID, nil
	case merchantID != nil && *merchantID != c.MerchantID:
		return 0, problem(http.StatusForbidden, codeForbidden, "merchant_id", "this token may not read another merchant")
	}
	return c.MerchantID, nil
}

func date(t time.Time) period.DateOnly { return period.DateOf(t) }

// GetSummary implements GET /v1/summary.
func (h *handlers) GetSummary(ctx context.Context, req gen.GetSummaryRequestObject) (gen.GetSummaryResponseObject, error) {
	p := req.Params
	sc, prob := resolve(ctx, p.From, p.To, p.MerchantId, p.Status)
	if prob != nil {
		return prob, nil
	}
	cmp, prob := parseComparison((*string)(p.Compare), p.CompareFrom, p.CompareTo)
	if prob != nil {
		return prob, nil
	}
	if cmp.mode == "" {
		cmp.mode = comparePreviousPeriod
	}
	prevFrom, prevTo := cmp.rangeOf(sc.from, sc.to)
	dr, prob := parseDrill(p.ProductId, p.CategoryId, p.CityId, p.Region, p.DeliveryType, p.PaymentMethod)
	if prob != nil {
		return prob, nil
	}
	q := stats.Query{MerchantID: sc.merchantID, Statuses: sc.statuses,
		Groups: []stats.Group{stats.NewGroup(sc.from, sc.to), stats.NewGroup(prevFrom, prevTo)}}
	if dr != nil {
		var err error
		if q.Keys, prob, err = h.keys(ctx, sc.merchantID, dr); prob != nil || err != nil {
			return prob, err
		}
	}
	ms, cs, err := h.reader.Figures(ctx, q)
	if err != nil {
		return nil, err
	}
	var ans any
	if dr != nil {
		none := gen.CustomerMetrics{}
		ans = gen.DrilledSummary{
			MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to), Status: sc.statuses, Filter: dr.filter(),
			Metrics: ms[0], Compare: gen.DrilledSummaryCompare(cmp.mode),
			Previous: gen.DrilledRangeMetrics{From: date(prevFrom), To: date(prevTo), Metrics: ms[1]},
			Change:   change(ms[0], ms[1], none, none),
		}
	} else {
		ans = gen.Summary{
			MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to), Status: sc.statuses,
			Metrics: ms[0], Customers: cs[0], Compare: (*gen.SummaryCompare)(&cmp.mode),
			Previous: gen.RangeMetrics{From: date(prevFrom), To: date(prevTo), Metrics: ms[1], Customers: cs[1]},
			Change:   change(ms[0], ms[1], cs[0], cs[1]),
		}
	}
	return unionAnswer(ans)
}

// GetTimeseries implements GET /v1/timeseries.
func (h *handlers) GetTimeseries(ctx context.Context, req gen.GetTimeseriesRequestObject) (gen.GetTimeseriesResponseObject, error) {
	p := req.Params
	sc, prob := resolve(ctx, p.From, p.To, p.MerchantId, p.Status)
	if prob != nil {
		return prob, nil
	}
	grain := period.Day
	if p.Grain != nil {
		g, err := period.ParseGrain(string(*p.Grain))
		if err != nil {
			return badParam("grain", err.Error()), nil
		}
		grain = g
	}
	cmp, prob := parseComparison((*string)(p.Compare), p.CompareFrom, p.CompareTo)
	if prob != nil {
		return prob, nil
	}
	shift, prob := cmp.shifter(grain, sc.from, sc.to)
	if prob != nil {
		return prob, nil
	}
	points := period.Points(grain, sc.from, sc.to)
	groups := make([]stats.Group, len(points), 2*len(points))
	for i, pt := range points {
		groups[i] = stats.Group{From: pt.From, To: pt.To, Tiles: period.Cover(pt, grain)}
	}
	if shift != nil { // each point's compared window, after the points
		for _, pt := range points {
			groups = append(groups, stats.NewGroup(shift(pt)))
		}
	}
	dr, prob := parseDrill(p.ProductId, p.CategoryId, p.CityId, p.Region, p.DeliveryType, p.PaymentMethod)
	if prob != nil {
		return prob, nil
	}
	q := stats.Query{MerchantID: sc.merchantID, Statuses: sc.statuses, Groups: groups}
	if dr != nil {
		var err error
		if q.Keys, prob, err = h.keys(ctx, sc.merchantID, dr); prob != nil || err != nil {
			return prob, err
		}
	}
	ms, cs, err := h.reader.Figures(ctx, q)
	if err != nil {
		return nil, err
	}
	var mode *string
	if shift != nil {
		mode = &cmp.mode
	}
	var ans any
	if dr != nil {
		out := gen.DrilledTimeseries{MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to),
			Grain: gen.DrilledTimeseriesGrain(grain), Status: sc.statuses, Filter: dr.filter(),
			Compare: (*gen.DrilledTimeseriesCompare)(mode), Points: make([]gen.DrilledPoint, len(points))}
		none := gen.CustomerMetrics{}
		for i, pt := range points {
			out.Points[i] = gen.DrilledPoint{Period: date(pt.Period), From: date(pt.From), To: date(pt.To), Metrics: ms[i]}
			if shift != nil {
				j := len(points) + i
				cf, ct := shift(pt)
				ch := change(ms[i], ms[j], none, none)
				out.Points[i].Compare = &gen.DrilledRangeMetrics{From: date(cf), To: date(ct), Metrics: ms[j]}
				out.Points[i].Change = &ch
			}
		}
		if csvWanted(ctx) {
			return drilledTimeseriesCSV(out)
		}
		ans = out
	} else {
		out := gen.Timeseries{MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to),
			Grain: gen.TimeseriesGrain(grain), Status: sc.statuses, Compare: (*gen.TimeseriesCompare)(mode),
			Points: make([]gen.Point, len(points))}
		for i, pt := range points {
			out.Points[i] = gen.Point{Period: date(pt.Period), From: date(pt.From), To: date(pt.To), Metrics: ms[i], Customers: cs[i]}
			if shift != nil {
				j := len(points) + i
				cf, ct := shift(pt)
				ch := change(ms[i], ms[j], cs[i], cs[j])
				out.Points[i].Compare = &gen.RangeMetrics{From: date(cf), To: date(ct), Metrics: ms[j], Customers: cs[j]}
				out.Points[i].Change = &ch
			}
		}
		if csvWanted(ctx) {
			return timeseriesCSV(out)
		}
		ans = out
	}
	return unionAnswer(ans)
}

// GetCustomers implements GET /v1/customers.
func (h *handlers) GetCustomers(ctx context.Context, req gen.GetCustomersRequestObject) (gen.GetCustomersResponseObject, error) {
	p := req.Params
	sc, prob := resolve(ctx, p.From, p.To, p.MerchantId, p.Status)
	if prob != nil {
		return prob, nil
	}
	_, cs, err := h.reader.Figures(ctx, stats.Query{MerchantID: sc.merchantID, Statuses: sc.statuses,
		Groups: []stats.Group{stats.NewGroup(sc.from, sc.to)}})
	if err != nil {
		return nil, err
	}
	return gen.GetCustomers200JSONResponse{MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to),
		Status: sc.statuses, Customers: cs[0]}, nil
}

// GetCohorts implements GET /v1/customers/cohorts.
func (h *handlers) GetCohorts(ctx context.Context, req gen.GetCohortsRequestObject) (gen.GetCohortsResponseObject, error) {
	p := req.Params
	sc, prob := resolve(ctx, p.From, p.To, p.MerchantId, p.Status)
	if prob != nil {
		return prob, nil
	}
	cohorts, err := h.reader.Cohorts(ctx, sc.merchantID, sc.statuses, period.Start(period.Month, sc.from), period.Start(period.Month, sc.to))
	if err != nil {
		return nil, err
	}
	out := gen.Cohorts{MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to), Status: sc.statuses, Cohorts: cohorts}
	if csvWanted(ctx) {
		return cohortsCSV(out)
	}
	return gen.GetCohorts200JSONResponse(out), nil
}

// page resolves the paging parameters (validated against openapi.yaml already).
func page(pg, size *int64) (page, pageSize, offset int64) {
	page, pageSize = 1, 50
	if pg != nil {
		page = *pg
	}
	if size != nil {
		pageSize = *size
	}
	return page, pageSize, (page - 1) * pageSize
}

// GetBreakdown implements GET /v1/breakdown/{dimension}.
func (h *handlers) GetBreakdown(ctx context.Context, req gen.GetBreakdownRequestObject) (gen.GetBreakdownResponseObject, error) {
	p := req.Params
	sc, prob := resolve(ctx, p.From, p.To, p.MerchantId, p.Status)
	if prob != nil {
		return prob, nil
	}
	if !req.Dimension.Valid() {
		return badParam("dimension", fmt.Sprintf("unknown dimension %q", req.Dimension)), nil
	}
	if p.ParentId != nil {
		if req.Dimension != gen.GetBreakdownParamsDimensionCategory {
			return badParam("parent_id", "parent_id applies to the category dimension only"), nil
		}
		if *p.ParentId != 0 {
			known, err := h.reader.CategoryKnown(ctx, *p.ParentId)
			if err != nil {
				return nil, err
			}
			if !known {
				return badParam("parent_id", fmt.Sprintf("unknown category %d", *p.ParentId)), nil
			}
		}
	}
	sort := "-gmv"
	if p.Sort != nil {
		sort = string(*p.Sort)
	}
	pg, size, offset := exportPage(ctx, p.Page, p.PageSize)
	total, rows, err := h.reader.Breakdown(ctx, string(req.Dimension), stats.List{
		MerchantID: sc.merchantID, Statuses: sc.statuses, From: sc.from, To: sc.to,
		Sort: sort, Limit: size, Offset: offset,
	}, p.ParentId)
	if errors.Is(err, stats.ErrUnknownSort) {
		return badParam("sort", err.Error()), nil
	}
	if err != nil {
		return nil, err
	}
	out := gen.Breakdown{MerchantId: sc.merchantID, Dimension: string(req.Dimension),
		From: date(sc.from), To: date(sc.to), Status: sc.statuses, Sort: sort, Page: pg, PageSize: size,
		Total: total, Rows: rows, ParentId: p.ParentId}
	if csvWanted(ctx) {
		return breakdownCSV(out)
	}
	return gen.GetBreakdown200JSONResponse(out), nil
}

// GetABC implements GET /v1/abc.
func (h *handlers) GetABC(ctx context.Context, req gen.GetABCRequestObject) (gen.GetABCResponseObject, error) {
	p := req.Params
	sc, prob := resolve(ctx, p.From, p.To, p.MerchantId, p.Status)
	if prob != nil {
		return prob, nil
	}
	q := stats.ABCQuery{Metric: "gmv", A: 0.8, B: 0.95, List: stats.List{
		MerchantID: sc.merchantID, Statuses: sc.statuses, From: sc.from, To: sc.to, Sort: "rank"}}
	if p.Metric != nil {
		q.Metric = string(*p.Metric)
	}
	if p.A != nil {
		q.A = *p.A
	}
	if p.B != nil {
		q.B = *p.B
	}
	if q.B < q.A {
		return badParam("b", "b must be at least a"), nil
	}
	if p.Class != nil {
		c := string(*p.Class)
		q.Class = &c
	}
	if p.Sort != nil {
		q.Sort = string(*p.Sort)
	}
	pg, size, offset := exportPage(ctx, p.Page, p.PageSize)
	q.Limit, q.Offset = size, offset
	res, err := h.reader.ABC(ctx, q)
	if errors.Is(err, stats.ErrUnknownSort) {
		return badParam("sort", err.Error()), nil
	}
	if err != nil {
		return nil, err
	}
	out := gen.ABC{MerchantId: sc.merchantID, From: date(sc.from), To: date(sc.to),
		Status: sc.statuses, Metric: q.Metric, A: q.A, B: q.B, Sort: q.Sort, Page: pg, PageSize: size,
		Total: res.Total, TotalValue: res.TotalValue, Classes: res.Classes, Products: res.Products}
	if csvWanted(ctx) {
		return abcCSV(out)
	}
	return gen.GetABC200JSONResponse(out), nil
}

// change is (cur − prev) / prev per metric, 4 places; nil where prev is zero or unknown.
func change(cur, prev gen.Metrics, curC, prevC gen.CustomerMetrics) gen.Change {
	i := func(c, p int64) *float64 { return ratio(float64(c), float64(p), true) }
	s := func(c, p *string) *float64 {
		if c == nil || p == nil {
			return nil
		}
		cf, err1 := strconv.ParseFloat(*c, 64)
		pf, err2 := strconv.ParseFloat(*p, 64)
		return ratio(cf, pf, err1 == nil && err2 == nil)
	}
	f := func(c, p *float64) *float64 {
		if c == nil || p == nil {
			return nil
		}
		return ratio(*c, *p, true)
	}
	return gen.Change{
		Orders: i(cur.Orders, prev.Orders), Accepted: i(cur.Accepted, prev.Accepted),
		Delivered: i(cur.Delivered, prev.Delivered), Cancelled: i(cur.Cancelled, prev.Cancelled),
		Returned: i(cur.Returned, prev.Returned), Items: i(cur.Items, prev.Items),
		Gmv: s(&cur.Gmv, &prev.Gmv), ReturnedAmount: s(&cur.ReturnedAmount, &prev.ReturnedAmount),
		Revenue: s(&cur.Revenue, &prev.Revenue), Aov: s(cur.Aov, prev.Aov),
		CancelRate: f(cur.CancelRate, prev.CancelRate), ReturnRate: f(cur.ReturnRate, prev.ReturnRate),
		AvgDeliveryHours: f(cur.AvgDeliveryHours, prev.AvgDeliveryHours),
		Customers:        i(curC.Customers, prevC.Customers), NewCustomers: i(curC.NewCustomers, prevC.NewCustomers),
		ReturningCustomers: i(curC.ReturningCustomers, prevC.ReturningCustomers),
		RepeatRate:         f(curC.RepeatRate, prevC.RepeatRate),
	}
}

func ratio(cur, prev float64, ok bool) *float64 {
	if !ok || prev == 0 {
		return nil
	}
	r := math.Round((cur-prev)/prev*1e4) / 1e4
	return &r
}

// GetFreshness implements GET /v1/freshness.
func (h *handlers) GetFreshness(ctx context.Context, req gen.GetFreshnessRequestObject) (gen.GetFreshnessResponseObject, error) {
	c, ok := auth.FromContext(ctx)
	if !ok {
		return nil, errors.New("no claims in context")
	}
	id, prob := whom(c, req.Params.MerchantId)
	if prob != nil {
		return prob, nil
	}
	f, err := h.reader.Freshness(ctx, id)
	if err != nil {
		return nil, err
	}
	return gen.GetFreshness200JSONResponse(f), nil
}

// PostAdminRefresh implements POST /v1/admin/refresh.
func (h *handlers) PostAdminRefresh(ctx context.Context, req gen.PostAdminRefreshRequestObject) (gen.PostAdminRefreshResponseObject, error) {
	if prob, err := requireAdmin(ctx); err != nil {
		return nil, err
	} else if prob != nil {
		return prob, nil
	}
	bad := func(param, detail string) (gen.PostAdminRefreshResponseObject, error) {
		return badParam(param, detail), nil
	}
	if req.Body == nil {
		return bad("body", "a JSON body with merchant_id, from and to is required")
	}
	b := *req.Body
	from, to := period.Date(b.From.Time), period.Date(b.To.Time)
	switch {
	case b.MerchantId < 1:
		return bad("merchant_id", "merchant_id must be a positive id")
	case from.After(to):
		return bad("from", "from is after to")
	case to.After(from.AddDate(maxBackfillYears, 0, -1)):
		return bad("to", fmt.Sprintf("the range may span at most %d years", maxBackfillYears))
	case h.backfill == nil:
		return nil, errors.New("admin refresh is not wired")
	}
	job, err := h.backfill.Backfill(ctx, b.MerchantId, from, to)
	if err != nil {
		return nil, err
	}
	return gen.PostAdminRefresh202JSONResponse{MerchantId: b.MerchantId, From: date(from), To: date(to),
		Days: int(to.Sub(from).Hours()/24) + 1, JobId: job}, nil
}

// GetMe implements GET /v1/me.
func (h *handlers) GetMe(ctx context.Context, _ gen.GetMeRequestObject) (gen.GetMeResponseObject, error) {
	c, ok := auth.FromContext(ctx)
	if !ok {
		return nil, errors.New("no claims in context")
	}
	me := gen.Me{Role: gen.MeRole(c.Role), MerchantId: c.MerchantID}
	if c.Role == auth.RoleMerchant {
		name, err := h.reader.MerchantName(ctx, c.MerchantID)
		if err != nil {
			return nil, err
		}
		me.Name = name
	}
	return gen.GetMe200JSONResponse(me), nil
}

// GetAdminMerchants implements GET /v1/admin/merchants.
func (h *handlers) GetAdminMerchants(ctx context.Context, req gen.GetAdminMerchantsRequestObject) (gen.GetAdminMerchantsResponseObject, error) {
	if prob, err := requireAdmin(ctx); err != nil {
		return nil, err
	} else if prob != nil {
		return prob, nil
	}
	pg, size, offset := page(req.Params.Page, req.Params.PageSize)
	total, ms, err := h.reader.Merchants(ctx, size, offset)
	if err != nil {
		return nil, err
	}
	return gen.GetAdminMerchants200JSONResponse{Page: pg, PageSize: size, Total: total, Merchants: ms}, nil
}

// requireAdmin is the 403 answer to a token that is not an admin's, nil for an admin's.
func requireAdmin(ctx context.Context) (*Problem, error) {
	c, ok := auth.FromContext(ctx)
	if !ok {
		return nil, errors.New("no claims in context")
	}
	if c.Role != auth.RoleAdmin {
		return problem(http.StatusForbidden, codeForbidden, "", "an admin token is required"), nil
	}
	return nil, nil
}

// unionJSON is a oneOf answer (summary, series: gen.SummaryAnswer, gen.TimeseriesAnswer)
// written as the bytes of its variant, which is what the union marshals to. The generated 200
// response encodes the union once more, and the encoder then compacts those bytes again: for
// a year's daily series, about 170 KB scanned twice. The variant is marshalled by go-json,
// which writes the same bytes as encoding/json (TestUnionAnswerAsEncodingJSON), faster.
type unionJSON []byte

func unionAnswer(variant any) (unionJSON, error) {
	b, err := gojson.Marshal(variant)
	return unionJSON(b), err
}

func (u unionJSON) write(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(append(u, '\n')) // as json.Encoder ends it
	return err
}

func (u unionJSON) VisitGetSummaryResponse(w http.ResponseWriter) error    { return u.write(w) }
func (u unionJSON) VisitGetTimeseriesResponse(w http.ResponseWriter) error { return u.write(w) }
