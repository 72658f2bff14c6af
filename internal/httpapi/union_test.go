package httpapi

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/merchantagg/merchantagg/gen"
	"github.com/merchantagg/merchantagg/internal/period"
)

// The union answers are written by go-json (unionAnswer): byte for byte what the generated
// union writes with encoding/json, for random variants of every kind.
func TestUnionAnswerAsEncodingJSON(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		var sa gen.SummaryAnswer
		var ta gen.TimeseriesAnswer
		cases := []struct {
			variant any
			union   interface{ MarshalJSON() ([]byte, error) }
		}{
			{new(gen.Summary), &sa}, {new(gen.DrilledSummary), &sa},
			{new(gen.Timeseries), &ta}, {new(gen.DrilledTimeseries), &ta},
		}
		for _, c := range cases {
			fill(rnd, reflect.ValueOf(c.variant).Elem())
			var err error
			switch v := c.variant.(type) {
			case *gen.Summary:
				err = sa.FromSummary(*v)
			case *gen.DrilledSummary:
				err = sa.FromDrilledSummary(*v)
			case *gen.Timeseries:
				err = ta.FromTimeseries(*v)
			case *gen.DrilledTimeseries:
				err = ta.FromDrilledTimeseries(*v)
			}
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.union.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := unionAnswer(reflect.ValueOf(c.variant).Elem().Interface())
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("%T:\n got %s\nwant %s", c.variant, got, want)
			}
		}
	}
}

var (
	dateType = reflect.TypeOf(period.DateOnly{})
	strs     = []string{"", "a", "12.34", "-0.01", "<b>&amp;</b>", "é ü 日本", "line\u2028sep", `q"uo\te`, "\x01"}
	floats   = []float64{0, -0.0, 1, -1, 0.1, 1e-7, 1.5e-6, 123456.789, 1e20, 1e21, 5e-324, math.MaxFloat64, 0.30000000000000004}
)

// fill sets v to random values: pointers nil or set, slices of 0-3, strings and floats from
// edge cases.
func fill(rnd *rand.Rand, v reflect.Value) {
	if v.Type() == dateType {
		v.Set(reflect.ValueOf(period.DateOf(time.Date(2000+rnd.IntN(30), 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rnd.IntN(366)))))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if rnd.IntN(3) == 0 {
			v.SetZero()
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(rnd, v.Elem())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(rnd, v.Field(i))
			}
		}
	case reflect.Slice:
		n := rnd.IntN(4)
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := 0; i < n; i++ {
			fill(rnd, v.Index(i))
		}
	case reflect.String:
		v.SetString(strs[rnd.IntN(len(strs))])
	case reflect.Float64:
		f := floats[rnd.IntN(len(floats))]
		if rnd.IntN(2) == 0 {
			f = rnd.NormFloat64() * math.Pow(10, float64(rnd.IntN(30)-15))
		}
		v.SetFloat(f)
	case reflect.Int64, reflect.Int32, reflect.Int:
		v.SetInt(rnd.Int64() >> rnd.IntN(64))
	case reflect.Bool:
		v.SetBool(rnd.IntN(2) == 0)
	default:
		panic("fill: " + v.Type().String())
	}
}
