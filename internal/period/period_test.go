package period

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func d(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		g        Grain
		in, want string
	}{
		{Day, "2025-03-15", "2025-03-15"},
		{Week, "2025-03-15", "2025-03-10"}, // Saturday → Monday
		{Week, "2025-03-10", "2025-03-10"},
		{Week, "2025-03-16", "2025-03-10"}, // Sunday ends the ISO week
		{Week, "2027-01-03", "2026-12-28"}, // ISO week 2026-W53
		{Month, "2024-02-29", "2024-02-01"},
		{Quarter, "2025-03-31", "2025-01-01"},
		{Quarter, "2025-04-01", "2025-04-01"},
		{Quarter, "2025-12-31", "2025-10-01"},
		{Year, "2024-12-31", "2024-01-01"},
		{Year, "2025-01-01", "2025-01-01"},
	} {
		t.Run(string(tc.g)+"/"+tc.in, func(t *testing.T) {
			require.Equal(t, d(tc.want), Start(tc.g, d(tc.in)))
		})
	}
}

func TestPrevious(t *testing.T) {
	t.Parallel()
	f, to := Previous(d("2025-03-01"), d("2025-03-31"))
	require.Equal(t, d("2025-01-29"), f)
	require.Equal(t, d("2025-02-28"), to)
	f, to = Previous(d("2025-01-01"), d("2025-01-01"))
	require.Equal(t, d("2024-12-31"), f)
	require.Equal(t, d("2024-12-31"), to)
}

func TestPointsClipEdges(t *testing.T) {
	t.Parallel()
	pts := Points(Month, d("2025-01-15"), d("2025-03-10"))
	require.Equal(t, []Point{
		{d("2025-01-01"), d("2025-01-15"), d("2025-01-31")},
		{d("2025-02-01"), d("2025-02-01"), d("2025-02-28")},
		{d("2025-03-01"), d("2025-03-01"), d("2025-03-10")},
	}, pts)
	require.Len(t, Points(Day, d("2024-02-27"), d("2024-03-01")), 4) // leap day included
	require.Len(t, Points(Week, d("2026-12-28"), d("2027-01-03")), 1)
	require.Len(t, Points(Quarter, d("2025-01-01"), d("2026-12-31")), 8)
	require.Equal(t, []Point{
		{d("2024-01-01"), d("2024-11-15"), d("2024-12-31")},
		{d("2025-01-01"), d("2025-01-01"), d("2025-12-31")},
		{d("2026-01-01"), d("2026-01-01"), d("2026-02-10")},
	}, Points(Year, d("2024-11-15"), d("2026-02-10")))
}

func TestCover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		from, to string
		want     []Tile
	}{
		{"one day", "2025-05-05", "2025-05-05", []Tile{{Day, d("2025-05-05"), d("2025-05-05")}}},
		{"whole month", "2025-02-01", "2025-02-28", []Tile{{Month, d("2025-02-01"), d("2025-02-01")}}},
		{"quarter boundary", "2025-03-20", "2025-04-10", []Tile{
			{Day, d("2025-03-20"), d("2025-03-23")},
			{Week, d("2025-03-24"), d("2025-03-31")},
			{Day, d("2025-04-07"), d("2025-04-10")},
		}},
		{"two whole months", "2025-03-01", "2025-04-30", []Tile{{Month, d("2025-03-01"), d("2025-04-01")}}},
		{"year with ragged edges", "2024-11-15", "2026-02-10", []Tile{
			{Day, d("2024-11-15"), d("2024-11-17")},
			{Week, d("2024-11-18"), d("2024-11-18")},
			{Day, d("2024-11-25"), d("2024-11-30")},
			{Month, d("2024-12-01"), d("2024-12-01")},
			{Quarter, d("2025-01-01"), d("2025-10-01")},
			{Month, d("2026-01-01"), d("2026-01-01")},
			{Day, d("2026-02-01"), d("2026-02-01")},
			{Week, d("2026-02-02"), d("2026-02-02")},
			{Day, d("2026-02-09"), d("2026-02-10")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CoverRange(d(tc.from), d(tc.to))
			require.Equal(t, tc.want, got)
			// The tiles cover every day exactly once.
			days := 0
			for _, tl := range got {
				for p := tl.First; !p.After(tl.Last); p = Step(tl.Grain, p, 1) {
					days += Days(p, Step(tl.Grain, p, 1).AddDate(0, 0, -1))
				}
			}
			require.Equal(t, Days(d(tc.from), d(tc.to)), days)
		})
	}
}

func TestCoverWholePeriodPoint(t *testing.T) {
	t.Parallel()
	pt := Points(Week, d("2025-03-10"), d("2025-03-16"))[0]
	require.Equal(t, []Tile{{Week, d("2025-03-10"), d("2025-03-10")}}, Cover(pt, Week))
	clipped := Points(Week, d("2025-03-12"), d("2025-03-16"))[0]
	require.Equal(t, []Tile{{Day, d("2025-03-12"), d("2025-03-16")}}, Cover(clipped, Week))
	// No year is stored: a whole year is its four quarters.
	year := Points(Year, d("2025-01-01"), d("2025-12-31"))[0]
	require.Equal(t, []Tile{{Quarter, d("2025-01-01"), d("2025-10-01")}}, Cover(year, Year))
}

func TestCoverDayPointsAsRanges(t *testing.T) {
	t.Parallel()
	// From a Sunday to a New Year's Day: one-day points at either edge (the week's first, the
	// month's and the quarter's last), whole and clipped periods between.
	for _, g := range []Grain{Day, Week, Month, Quarter, Year} {
		for _, pt := range Points(g, d("2024-12-29"), d("2026-01-01")) {
			require.Equal(t, CoverRange(pt.From, pt.To), Cover(pt, g), "%s point %v", g, pt.Period)
		}
	}
}

func BenchmarkCoverDaySeries(b *testing.B) {
	points := Points(Day, d("2025-01-01"), d("2025-12-31"))
	for b.Loop() {
		for _, pt := range points {
			Cover(pt, Day)
		}
	}
}

func TestCoverSums(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		from, to string
		want     []SignedTile
	}{
		{"one day", "2025-05-05", "2025-05-05", []SignedTile{{Tile{Day, d("2025-05-05"), d("2025-05-05")}, 1}}},
		{"whole month", "2025-02-01", "2025-02-28", []SignedTile{{Tile{Month, d("2025-02-01"), d("2025-02-01")}, 1}}},
		// Six days of a week: the week minus the Sunday after the range.
		{"week less a day", "2025-05-26", "2025-05-31", []SignedTile{
			{Tile{Week, d("2025-05-26"), d("2025-05-26")}, 1},
			{Tile{Day, d("2025-06-01"), d("2025-06-01")}, -1},
		}},
		// A month less its first three days, which themselves are a week less four days.
		{"month less a few days", "2025-05-04", "2025-05-31", []SignedTile{
			{Tile{Month, d("2025-05-01"), d("2025-05-01")}, 1},
			{Tile{Day, d("2025-05-01"), d("2025-05-03")}, -1},
		}},
		{"two whole months", "2025-03-01", "2025-04-30", []SignedTile{{Tile{Month, d("2025-03-01"), d("2025-04-01")}, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, CoverSums(d(tc.from), d(tc.to)))
		})
	}
}

// Whatever the range, the signed tiles count every day inside it once and every day outside
// it not at all, each tile is a run of stored periods, and the tiling reads no more rows (by
// rowCost) than CoverRange's.
func TestCoverSumsExact(t *testing.T) {
	t.Parallel()
	start := d("2023-12-25")
	for i := 0; i < 3000; i++ {
		from := start.AddDate(0, 0, (i*7919)%900)
		to := from.AddDate(0, 0, (i*104729)%400)
		name := from.Format(time.DateOnly) + ".." + to.Format(time.DateOnly)
		tiles := CoverSums(from, to)
		count := map[time.Time]int{}
		cost := 0
		for _, tl := range tiles {
			require.Contains(t, []int{1, -1}, tl.Sign, name)
			require.Equal(t, Start(tl.Grain, tl.First), tl.First, name)
			require.Equal(t, Start(tl.Grain, tl.Last), tl.Last, name)
			for p := tl.First; !p.After(tl.Last); p = Step(tl.Grain, p, 1) {
				cost += rowCost(tl.Grain)
				for day := p; day.Before(Step(tl.Grain, p, 1)); day = day.AddDate(0, 0, 1) {
					count[day] += tl.Sign
				}
			}
		}
		for day, n := range count {
			want := 0
			if !day.Before(from) && !day.After(to) {
				want = 1
			}
			require.Equal(t, want, n, "%s: day %s", name, day.Format(time.DateOnly))
		}
		for day := from; !day.After(to); day = day.AddDate(0, 0, 1) {
			require.Equal(t, 1, count[day], "%s: day %s", name, day.Format(time.DateOnly))
		}
		plain := 0
		for _, tl := range CoverRange(from, to) {
			plain += rowCost(tl.Grain) * len(Points(tl.Grain, tl.First, tl.Last))
		}
		require.LessOrEqual(t, cost, plain, name)
	}
}

func BenchmarkCoverSums(b *testing.B) {
	from, to := d("2025-05-21"), d("2026-05-20")
	for b.Loop() {
		CoverSums(from, to)
	}
}

func TestYearEarlier(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2025-03-15": "2024-03-15", "2024-02-29": "2023-02-28", "2024-03-01": "2023-03-01",
		"2025-02-28": "2024-02-28", "2025-01-01": "2024-01-01",
	} {
		require.Equal(t, d(want), YearEarlier(d(in)), in)
	}
}
