package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Require skips tb unless v can run here: the process is root and the
// variant's binaries and tools are installed. With CRI_ENRICHERD_E2E=1 a
// missing dependency fails the test instead, so CI cannot pass by skipping.
func Require(tb testing.TB, v Variant) {
	tb.Helper()
	skipOrFail(tb, Usable(v))
}

// skipOrFail skips tb for a missing dependency, or fails it when the
// environment says the end-to-end tests must run.
func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
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

// RequireKubelet is Require plus what the kubelet mode needs: the kubelet
// binary (hack/install-kubelet.sh, run by `make deps`) and util-linux's
// unshare and mount for its private mount namespace.
func RequireKubelet(tb testing.TB, v Variant) {
	tb.Helper()
	skipOrFail(tb, KubeletUsable(v))
}

// KubeletUsable reports why StartKubelet cannot run on v here, or nil.
func KubeletUsable(v Variant) error {
	if err := Usable(v); err != nil {
		return err
	}
	var errs []error
	if err := checkExecutable(KubeletPath()); err != nil {
		errs = append(errs, fmt.Errorf("kubelet: %w", err))
	}
	for _, tool := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tool, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kubelet mode not available (run make deps): %w", err)
	}
	return nil
}
