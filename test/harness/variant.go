package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Environment variables that locate the test dependencies. The defaults match
// what hack/install-test-deps.sh installs.
const (
	// EnvContainerd16 is the path of the containerd 1.6 binary.
	EnvContainerd16 = "CRI_ENRICHERD_TEST_CONTAINERD16"
	// EnvContainerd2 is the path of the containerd 2.x binary.
	EnvContainerd2 = "CRI_ENRICHERD_TEST_CONTAINERD2"
	// EnvCache is the cache root the install script builds into.
	EnvCache = "CRI_ENRICHERD_TEST_CACHE"
	// EnvCtr is the path of the ctr binary used to import images.
	EnvCtr = "CRI_ENRICHERD_TEST_CTR"
	// EnvBusybox is the path of the static busybox put into the test images.
	EnvBusybox = "CRI_ENRICHERD_TEST_BUSYBOX"
	// EnvCNIBin is the directory of the CNI plugins.
	EnvCNIBin = "CRI_ENRICHERD_TEST_CNI_BIN"
	// EnvCrictl is the path of crictl.
	EnvCrictl = "CRI_ENRICHERD_TEST_CRICTL"
	// EnvKubelet is the path of the kubelet binary the kubelet mode runs.
	EnvKubelet = "CRI_ENRICHERD_TEST_KUBELET"
	// EnvE2E set to "1" turns a missing dependency from a skip into a failure.
	EnvE2E = "CRI_ENRICHERD_E2E"
)

// Variant names.
const (
	Containerd16 = "containerd-1.6"
	Containerd24 = "containerd-2.4"
)

const (
	defaultCacheDir   = "/var/cache/cri-enricherd-test"
	containerd2Subdir = "bin/containerd-2.4.2"
	kubeletSubdir     = "bin/kubelet-1.34.4"
	shimBinary        = "containerd-shim-runc-v2"
)

// Variant is one containerd build the harness can run.
type Variant struct {
	// Name is Containerd16 or Containerd24.
	Name string
	// Binary is the containerd executable.
	Binary string
	// ShimDir holds containerd-shim-runc-v2 for this build; it goes first on
	// containerd's PATH so each build runs its own shim.
	ShimDir string
	// ConfigVersion is the containerd config schema: 2 for 1.6, 3 for 2.x.
	ConfigVersion int
}

// Variants returns every known variant, located from the environment or the
// install script's defaults. Use Available to see whether one can run.
func Variants() []Variant {
	return []Variant{containerd16Variant(), containerd24Variant()}
}

// VariantByName returns the variant with the given name.
func VariantByName(name string) (Variant, error) {
	for _, v := range Variants() {
		if v.Name == name {
			return v, nil
		}
	}
	return Variant{}, fmt.Errorf("unknown variant %q (want %s or %s)", name, Containerd16, Containerd24)
}

// Available reports why the variant cannot run here, or nil when its binary
// and shim and the tools every variant needs are present.
func (v Variant) Available() error {
	paths := []string{v.Binary, filepath.Join(v.ShimDir, shimBinary), ctrPath("")}
	var errs []error
	for _, p := range paths {
		if err := checkExecutable(p); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := exec.LookPath("runc"); err != nil {
		errs = append(errs, fmt.Errorf("runc: %w", err))
	}
	if _, err := os.Stat(busyboxPath("")); err != nil {
		errs = append(errs, fmt.Errorf("busybox: %w", err))
	}
	if err := checkExecutable(filepath.Join(cniBinDir(""), "bridge")); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("variant %s not available (run hack/install-test-deps.sh): %w", v.Name, err)
	}
	return nil
}

func containerd16Variant() Variant {
	bin := envOr(EnvContainerd16, "/usr/bin/containerd")
	return Variant{Name: Containerd16, Binary: bin, ShimDir: filepath.Dir(bin), ConfigVersion: 2}
}

func containerd24Variant() Variant {
	cache := envOr(EnvCache, defaultCacheDir)
	bin := envOr(EnvContainerd2, filepath.Join(cache, containerd2Subdir, "containerd"))
	return Variant{Name: Containerd24, Binary: bin, ShimDir: filepath.Dir(bin), ConfigVersion: 3}
}

func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// CrictlPath is where crictl is: EnvCrictl, else the install script's
// cache. Point it at a runtime with `crictl --runtime-endpoint rt.Endpoint()`.
func CrictlPath() string {
	return envOr(EnvCrictl, filepath.Join(envOr(EnvCache, defaultCacheDir), "bin", "crictl"))
}

// ctrPath, busyboxPath and cniBinDir pick an explicit option first, then the
// environment, then the Debian location.
func ctrPath(opt string) string {
	if opt != "" {
		return opt
	}
	return envOr(EnvCtr, "/usr/bin/ctr")
}

func busyboxPath(opt string) string {
	if opt != "" {
		return opt
	}
	return envOr(EnvBusybox, "/bin/busybox")
}

func cniBinDir(opt string) string {
	if opt != "" {
		return opt
	}
	return envOr(EnvCNIBin, "/usr/lib/cni")
}

// KubeletPath is where the kubelet is: EnvKubelet, else the install
// script's cache.
func KubeletPath() string {
	return envOr(EnvKubelet, filepath.Join(envOr(EnvCache, defaultCacheDir), kubeletSubdir, "kubelet"))
}
