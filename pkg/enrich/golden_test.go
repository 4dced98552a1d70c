package enrich

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// checkGolden compares v, as indented JSON, with testdata/golden/name.
func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("write golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking the change):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// goldenName turns "crio-1.36/container-status-verbose-0.json" into
// "crio-1.36_container-status-verbose-0.json".
func goldenName(fixture, suffix string) string {
	return strings.TrimSuffix(strings.ReplaceAll(fixture, "/", "_"), ".json") + suffix + ".json"
}

var (
	containerFixtures = []string{
		"containerd-1.6/container-status-verbose-0.json",
		"containerd-1.6/container-status-verbose-1.json",
		"containerd-2.4/container-status-verbose-0.json",
		"crio-1.36/container-status-verbose-0.json",
	}
	sandboxFixtures = []string{
		"containerd-1.6/sandbox-status-verbose-0.json",
		"containerd-1.6/sandbox-status-verbose-1.json",
		"containerd-1.6/sandbox-status-verbose-2.json",
		"containerd-2.4/sandbox-status-verbose-0.json",
		"crio-1.36/sandbox-status-verbose-0.json",
	}
)

// TestContainer_MatchesGolden pins the whole record each real answer maps to,
// with the default options and with every export on.
func TestContainer_MatchesGolden(t *testing.T) {
	for _, fixture := range containerFixtures {
		for suffix, opts := range map[string]Options{"": {}, ".export-all": {ExportEnv: true, ExportAnnotations: true}} {
			t.Run(fixture+suffix, func(t *testing.T) {
				res, err := Container(loadContainer(t, fixture), fixtureRuntime(t, filepath.Dir(fixture)), opts)
				if err != nil {
					t.Fatalf("Container: %v", err)
				}
				checkGolden(t, goldenName(fixture, suffix), res.Record)
			})
		}
	}
}

// TestSandbox_MatchesGolden pins the whole sandbox record each real answer
// maps to, with the default options and with every export on.
func TestSandbox_MatchesGolden(t *testing.T) {
	for _, fixture := range sandboxFixtures {
		for suffix, opts := range map[string]Options{"": {}, ".export-all": {ExportEnv: true, ExportAnnotations: true}} {
			t.Run(fixture+suffix, func(t *testing.T) {
				rec, err := Sandbox(loadSandbox(t, fixture), fixtureRuntime(t, filepath.Dir(fixture)), opts)
				if err != nil {
					t.Fatalf("Sandbox: %v", err)
				}
				checkGolden(t, goldenName(fixture, suffix), rec)
			})
		}
	}
}
