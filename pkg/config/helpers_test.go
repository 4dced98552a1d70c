package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a YAML file into a fresh temporary directory.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, args, environ []string) Config {
	t.Helper()
	c, err := Load(args, environ)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", args, environ, err)
	}
	return c
}

// problemsOf returns the problems of a *ValidationError, failing otherwise.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error = %v, want *ValidationError", err)
	}
	return verr.Problems
}

// assertProblems checks that every wanted fragment appears in exactly one
// problem and that no problem is left unexplained.
func assertProblems(t *testing.T, got []string, want []string) {
	t.Helper()
	matched := make([]bool, len(got))
	for _, w := range want {
		n := 0
		for i, p := range got {
			if strings.Contains(p, w) {
				matched[i] = true
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d problems contain %q, want 1", n, w)
		}
	}
	for i, p := range got {
		if !matched[i] {
			t.Errorf("unexpected problem: %s", p)
		}
	}
}
