package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/merchantagg/merchantagg/gen"
)

// Stable problem codes (the `code` member of every problem+json body).
const (
	codeBadParameter = "bad_parameter"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeInternal     = "internal"
	codeTimeout      = "timeout"
	codeUnavailable  = "unavailable"
	codeRateLimited  = "rate_limited"
	codeOverloaded   = "overloaded"
)

// Problem is an RFC 7807 answer to a request that cannot be served as asked (a 4xx). It is
// the typed response of every strict handler for such an outcome (it implements each
// operation's response interface) and an error where a helper returns one.
type Problem gen.Problem

// problem builds one. param is empty unless one parameter is at fault.
func problem(status int, code, param, detail string) *Problem {
	p := &Problem{Type: "https://merchantagg.dev/problems/" + code, Title: http.StatusText(status),
		Status: status, Code: &code, Detail: &detail}
	if param != "" {
		p.Param = &param
	}
	return p
}

func badParam(param, detail string) *Problem {
	return problem(http.StatusBadRequest, codeBadParameter, param, detail)
}

func (p *Problem) Error() string { return *p.Detail }

func (p *Problem) write(w http.ResponseWriter) error {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	return json.NewEncoder(w).Encode(gen.Problem(*p))
}

// The generated response interfaces it implements.
var (
	_ gen.GetSummaryResponseObject        = (*Problem)(nil)
	_ gen.GetTimeseriesResponseObject     = (*Problem)(nil)
	_ gen.GetCustomersResponseObject      = (*Problem)(nil)
	_ gen.GetCohortsResponseObject        = (*Problem)(nil)
	_ gen.GetBreakdownResponseObject      = (*Problem)(nil)
	_ gen.GetABCResponseObject            = (*Problem)(nil)
	_ gen.GetFreshnessResponseObject      = (*Problem)(nil)
	_ gen.PostAdminRefreshResponseObject  = (*Problem)(nil)
	_ gen.GetAdminMerchantsResponseObject = (*Problem)(nil)
)

func (p *Problem) VisitGetSummaryResponse(w http.ResponseWriter) error        { return p.write(w) }
func (p *Problem) VisitGetTimeseriesResponse(w http.ResponseWriter) error     { return p.write(w) }
func (p *Problem) VisitGetCustomersResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p *Problem) VisitGetCohortsResponse(w http.ResponseWriter) error        { return p.write(w) }
func (p *Problem) VisitGetBreakdownResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p *Problem) VisitGetABCResponse(w http.ResponseWriter) error            { return p.write(w) }
func (p *Problem) VisitGetFreshnessResponse(w http.ResponseWriter) error      { return p.write(w) }
func (p *Problem) VisitPostAdminRefreshResponse(w http.ResponseWriter) error  { return p.write(w) }
func (p *Problem) VisitGetAdminMerchantsResponse(w http.ResponseWriter) error { return p.write(w) }

// writeProblem answers with a problem outside the strict handlers (middleware, 404, 500).
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if id := middleware.GetReqID(r.Context()); id != "" {
		p.RequestId = &id
	}
	_ = p.write(w)
}
