package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's configuration table")

const (
	readmePath  = "../../README.md"
	readmeStart = "<!-- config-reference:start -->\n"
	readmeEnd   = "<!-- config-reference:end -->"
)

// TestReadme_HasTheCurrentConfigReference keeps the README's configuration
// table equal to the key table the daemon really reads.
func TestReadme_HasTheCurrentConfigReference(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, readmeStart), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("README lacks the %q ... %q markers", readmeStart, readmeEnd)
	}
	want := ReferenceMarkdown()
	if got := s[i+len(readmeStart) : j]; got != want {
		if *updateReadme {
			s = s[:i+len(readmeStart)] + want + s[j:]
			if err := os.WriteFile(readmePath, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README configuration table is stale: run go test ./pkg/config -run TestReadme -update-readme")
	}
}
