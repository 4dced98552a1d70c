package promtext

import (
	"strings"
	"testing"
)

func TestParse_SumsTheSeriesThatMatch(t *testing.T) {
	page := `# HELP x_total a counter
# TYPE x_total counter
x_total{rpc="A",code="OK"} 3
x_total{rpc="A",code="NotFound"} 1
x_total{rpc="B",code="OK"} 5
x_total_other 100
up 1
`
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
		{"up", nil, 1},
		{"missing", nil, 0},
	}
	for _, tt := range tests {
		if got := s.Sum(tt.name, tt.contains...); got != tt.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.contains, got, tt.want)
		}
	}
}
