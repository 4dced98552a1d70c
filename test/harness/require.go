package harness

import (
	"errors"
	"os"
	"testing"
)

// Require skips tb unless v can run here: the process is root and the
// variant's binaries and tools are installed. With CRI_ENRICHERD_E2E=1 a
// missing dependency fails the test instead, so CI cannot pass by skipping.
func Require(tb testing.TB, v Variant) {
	tb.Helper()
	err := Usable(v)
	if err == nil {
		return
	}
	if os.Getenv(EnvE2E) == "1" {
		tb.Fatalf("%s=1 but %v", EnvE2E, err)
	}
	tb.Skip(err)
}

// Usable reports why v cannot run in this process, or nil.
func Usable(v Variant) error {
	if os.Geteuid() != 0 {
		return errors.New("the real-runtime harness needs root (cgroups, mounts, network namespaces)")
	}
	return v.Available()
}
