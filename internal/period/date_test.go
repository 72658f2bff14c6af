package period

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/oapi-codegen/runtime/types"
)

// DateOnly writes what the runtime's Date writes, and reads it back, for every day of two
// centuries and some years far out.
func TestDateOnlyJSONAsTheRuntimes(t *testing.T) {
	check := func(d time.Time) {
		t.Helper()
		want, err := json.Marshal(types.Date{Time: d})
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(DateOf(d))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("%v: got %s, want %s", d, got, want)
		}
		var back DateOnly
		if err := json.Unmarshal(got, &back); err != nil || !back.Time.Equal(d) {
			t.Fatalf("%s read back as %v (%v)", got, back.Time, err)
		}
	}
	for d := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2100; d = d.AddDate(0, 0, 1) {
		check(d)
	}
	for _, y := range []int{1, 999, 9999} {
		check(time.Date(y, 12, 31, 0, 0, 0, 0, time.UTC))
	}
	var p DateOnly
	if err := p.Bind("2026-02-28"); err != nil || p.Format(time.DateOnly) != "2026-02-28" {
		t.Fatalf("Bind: %v %v", p, err)
	}
	if err := p.Bind("2026-02-30"); err == nil {
		t.Fatal("Bind accepted 2026-02-30")
	}
}
