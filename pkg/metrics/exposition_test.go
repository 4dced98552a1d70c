package metrics_test

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden from the current exposition")

// normalize replaces what changes from build to build: the Go version in
// build_info.
func normalize(page string) string {
	return strings.ReplaceAll(page, `goversion="`+runtime.Version()+`"`, `goversion="GOVERSION"`)
}

func TestExposition_MatchesGolden(t *testing.T) {
	got := normalize(ownFamilies(scrape(t, newFixture(t).metrics)))
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/metrics -run TestExposition_MatchesGolden -update)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s (rerun with -update if the change is intended):\n%s", golden, lineDiff(string(want), got))
	}
}

// TestExposition_PassesPromtool lints the whole page the daemon serves, Go
// and process collectors included, with and without pod labels.
func TestExposition_PassesPromtool(t *testing.T) {
	for name, allowlist := range map[string][]string{
		"default":   nil,
		"allowlist": {"app", "app.kubernetes.io/name"},
	} {
		t.Run(name, func(t *testing.T) {
			promtool(t, scrape(t, newFixture(t, allowlist...).metrics), "check", "metrics")
		})
	}
}

// lineDiff lists the lines only in want (-) or only in got (+).
func lineDiff(want, got string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	w, g := count(want), count(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] == 0 {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if w[l] == 0 {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}
