package main

import (
	"path/filepath"
	"testing"
)

func TestGoBenchRows_ShowMedianAndSpreadBesideTheTargets(t *testing.T) {
	rows, err := goBenchRows(filepath.Join("testdata", "go-bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]row{}
	for _, r := range rows {
		got[r.figure] = r
	}
	tests := []struct {
		figure, measured string
		verdict          verdict
	}{
		// The fewest runs (2, in the cgroup package) decide whether a
		// spread can be given at all.
		{"runs per benchmark (± is benchstat's 95% interval of the median)", "2", miss},
		{"cache get, full ID (10,000 records)", "68 ns ± 32%, 0 B, 0 allocs", pass},
		{"cache get, 12-char prefix", "881 ns ± 59%, 0 B, 0 allocs", pass},
		{"cgroup path parse, cgroupfs", "123 ns ± ∞, 0 B, 0 allocs", info},
		{"PID to container (read + parse /proc/self/cgroup)", "5925 ns ± ∞, 2744 B, 29 allocs", info},
	}
	for _, tt := range tests {
		t.Run(tt.figure, func(t *testing.T) {
			r, ok := got[tt.figure]
			if !ok {
				t.Fatalf("no row; rows: %v", rows)
			}
			if r.measured != tt.measured || r.verdict != tt.verdict {
				t.Errorf("measured %q (%v), want %q (%v)", r.measured, r.verdict, tt.measured, tt.verdict)
			}
		})
	}
	if len(rows) != len(tests) {
		t.Errorf("%d rows, want %d (a benchmark absent from the file has no row): %v", len(rows), len(tests), rows)
	}
}
