package period

import (
	"time"

	"github.com/oapi-codegen/runtime/types"
)

// DateOnly is a calendar day as the API reads and writes it, YYYY-MM-DD: gen's type for the
// OpenAPI `format: date` (gen/oapi-codegen.yaml, type-mapping). It is the runtime's Date
// (parsing, binding of query parameters, text) with its JSON appended straight into bytes:
// the runtime's Date marshals a string through encoding/json, and a daily series writes three
// dates a point.
type DateOnly struct{ types.Date }

// DateOf is the day of t.
func DateOf(t time.Time) DateOnly { return DateOnly{types.Date{Time: t}} }

// MarshalJSON writes the day as a JSON string.
func (d DateOnly) MarshalJSON() ([]byte, error) {
	b := d.Time.AppendFormat(append(make([]byte, 0, len(types.DateFormat)+2), '"'), types.DateFormat)
	return append(b, '"'), nil
}
