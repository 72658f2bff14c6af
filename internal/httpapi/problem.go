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
)

// problem builds an RFC 7807 body. param is empty unless one parameter is at fault.
func problem(status int, code, param, detail string) gen.Problem {
	p := gen.Problem{Type: "https://merchantagg.dev/problems/" + code, Title: http.StatusText(status),
		Status: status, Code: &code, Detail: &detail}
	if param != "" {
		p.Param = &param
	}
	return p
}

func badParam(param, detail string) gen.Problem {
	return problem(http.StatusBadRequest, codeBadParameter, param, detail)
}

// writeProblem answers with a problem outside the strict handlers (middleware, 404, 500).
func writeProblem(w http.ResponseWriter, r *http.Request, p gen.Problem) {
	if id := middleware.GetReqID(r.Context()); id != "" {
		p.RequestId = &id
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
