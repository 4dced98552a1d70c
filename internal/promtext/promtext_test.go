package promtext

import (
	"strings"
	"testing"
)

const page = `# HELP x_total a counter
# TYPE x_total counter
x_total{rpc="A",code="OK"} 3
x_total{rpc="A",code="NotFound"} 1
x_total{rpc="B",code="OK"} 5
x_total_other 100
# HELP d_seconds a histogram
# TYPE d_seconds histogram
d_seconds_bucket{rpc="A",le="0.1"} 2
d_seconds_bucket{rpc="A",le="+Inf"} 3
d_seconds_sum{rpc="A"} 0.5
d_seconds_count{rpc="A"} 3
up 1
`

func TestSum_AddsTheSeriesWhoseLabelsMatch(t *testing.T) {
	s, err := Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		contains []string
		want     float64
	}{
		{"x_total", nil, 9},
		{"x_total", []string{`rpc="A"`}, 4},
		{"x_total", []string{`rpc="A"`, `code="OK"`}, 3},
		{"d_seconds_sum", []string{`rpc="A"`}, 0.5},
		{"d_seconds_count", nil, 3},
		{"d_seconds_bucket", []string{`le="0.1"`}, 2},
		{"up", nil, 1},
		{"missing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name+strings.Join(tt.contains, ","), func(t *testing.T) {
			if got := s.Sum(tt.name, tt.contains...); got != tt.want {
				t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.contains, got, tt.want)
			}
		})
	}
}

func TestParse_KeysSeriesAsPrometheusPrintsThem(t *testing.T) {
	s, err := Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{`x_total{code="OK", rpc="A"}`, `x_total_other`, `d_seconds_bucket{le="+Inf", rpc="A"}`} {
		if _, ok := s[series]; !ok {
			t.Errorf("no series %s in %v", series, s)
		}
	}
}

func TestParse_RejectsABrokenPage(t *testing.T) {
	if _, err := Parse(strings.NewReader("x_total{rpc=\"A\" 3\n")); err == nil {
		t.Error("Parse accepted an unterminated label set")
	}
}
