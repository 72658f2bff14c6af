package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// validator checks every request against openapi.yaml before a handler sees it, and answers
// 400 problem+json naming the parameter at fault.
func validator(spec *openapi3.T) (func(http.Handler) http.Handler, error) {
	spec.Servers = nil // match paths on any host
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("openapi router: %w", err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			route, params, err := router.FindRoute(r)
			if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
				next.ServeHTTP(w, r) // chi answers 404/405
				return
			}
			if err == nil {
				err = openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
					Request: r, PathParams: params, Route: route, Options: opts,
				})
			}
			if err != nil {
				writeProblem(w, r, requestProblem(err))
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}

func requestProblem(err error) *Problem {
	var re *openapi3filter.RequestError
	if errors.As(err, &re) && re.Parameter != nil {
		// The schema error's reason alone: its full text dumps the schema over many lines.
		reason := re.Reason
		var se *openapi3.SchemaError
		switch {
		case errors.As(re.Err, &se):
			reason = se.Reason
		case reason == "" && re.Err != nil:
			reason = re.Err.Error()
		}
		return badParam(re.Parameter.Name, fmt.Sprintf("parameter %q: %s", re.Parameter.Name, reason))
	}
	if errors.As(err, &re) && re.RequestBody != nil {
		// A body field is named by its JSON path (merchant_id, from); the body itself when
		// it is not JSON or not an object.
		var se *openapi3.SchemaError
		if errors.As(re.Err, &se) && len(se.JSONPointer()) > 0 {
			name := strings.Join(se.JSONPointer(), ".")
			return badParam(name, fmt.Sprintf("field %q: %s", name, se.Reason))
		}
		return badParam("body", "the request body must be a JSON object as the API describes")
	}
	return badParam("", "invalid request")
}
