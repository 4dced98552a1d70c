package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// kubeletLayout is every path of one kubelet, all inside its temp dir.
type kubeletLayout struct {
	dir, root, certs, manifests, podLogs, volumePlugins string
	sysctls, private, config, script, log               string
}

func newKubeletLayout(dir string) kubeletLayout {
	p := func(name string) string { return filepath.Join(dir, name) }
	return kubeletLayout{
		dir: dir, root: p("root"), certs: p("pki"), manifests: p("manifests"), podLogs: p("pods"),
		volumePlugins: p("volume-plugins"), sysctls: p("sysctl"), private: p("private"),
		config: p("config.yaml"), script: p("enter.sh"), log: p("kubelet.log"),
	}
}

func (l kubeletLayout) mkdirs() error {
	for _, d := range []string{l.root, l.certs, l.manifests, l.podLogs, l.volumePlugins, l.sysctls, l.private} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	return nil
}

// kubeletPorts are the kubelet's listeners, all on 127.0.0.1.
type kubeletPorts struct {
	server, readOnly, healthz int
}

// freePorts asks the kernel for n unused loopback ports. Another process may
// take one before the kubelet binds it; the kubelet then exits and
// StartKubelet reports it with the log tail.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// kubeletConfigParams fill the KubeletConfiguration.
type kubeletConfigParams struct {
	layout     kubeletLayout
	ports      kubeletPorts
	endpoint   string
	cgroupRoot string
}

// kubeletConfig is a standalone kubelet's KubeletConfiguration. Each setting
// that deviates from the defaults keeps the kubelet off shared host state or
// lets it run on this kind of host (cgroup v1 hybrid, no swap accounting, no
// CAP_SYS_RESOURCE); see the comments beside them.
func kubeletConfig(p kubeletConfigParams) ([]byte, error) {
	cfg := map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// No API server: static pods only, served on loopback.
		"staticPodPath":      p.layout.manifests,
		"fileCheckFrequency": "2s",
		"enableServer":       true,
		"address":            "127.0.0.1",
		"port":               p.ports.server,
		"readOnlyPort":       p.ports.readOnly,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        p.ports.healthz,
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
		// The runtime is the test's containerd, with its cgroupfs driver.
		"containerRuntimeEndpoint": p.endpoint,
		"cgroupDriver":             "cgroupfs",
		// With the default root "/" the kubelet's orphan cleanup kills every
		// /kubepods/*/pod* cgroup on the host, other tests' pods included.
		"cgroupRoot": p.cgroupRoot,
		"podLogsDir": p.layout.podLogs,
		// The default is under /usr/libexec/kubernetes.
		"volumePluginDir": p.layout.volumePlugins,
		// True would add KUBE-* chains to the host's iptables.
		"makeIPTablesUtilChains": false,
		"failSwapOn":             false,
		"failCgroupV1":           false,
		// Lowering its own score needs more than the test may change.
		"oomScoreAdj": 0,
		// The test's images must never be collected or evicted.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"evictionHard": map[string]string{
			"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%",
		},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal kubelet config: %w", err)
	}
	return b, nil
}

// kubeletArgs are the flags that have no KubeletConfiguration field.
func kubeletArgs(l kubeletLayout, nodeName string) []string {
	return []string{
		"--config=" + l.config,
		"--root-dir=" + l.root,
		"--cert-dir=" + l.certs,
		"--hostname-override=" + nodeName,
		"--v=2",
	}
}

// kubeletSysctls are the kernel settings the kubelet's setupKernelTunables
// rewrites at start. In its namespace each one is a file of the test.
func kubeletSysctls() []string {
	return []string{
		"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	}
}

// kubeletHostPaths are the paths the kubelet uses whatever --root-dir says:
// the device plugin socket dir, the /var/log/containers symlinks, and the
// default volume plugin dir (which volumePluginDir already moves).
func kubeletHostPaths() []string {
	return []string{"/var/lib/kubelet", "/var/log/containers", "/usr/libexec/kubernetes"}
}

// privateMount is one mount the namespace script makes before it execs
// the kubelet: a bind of src over target, or, when overlay is set, an
// overlay over target (an existing dir) whose writes land in src/upper.
type privateMount struct {
	src, target string
	overlay     bool
}

// privateMounts plans the kubelet's private view: a test-owned file over
// each sysctl, an empty test-owned dir over each host path that exists, and
// for a host path that does not exist an overlay over its nearest existing
// parent, so the kubelet can create it without creating it on the host.
func privateMounts(l kubeletLayout, exists func(string) bool) []privateMount {
	var mounts []privateMount
	for _, s := range kubeletSysctls() {
		mounts = append(mounts, privateMount{src: filepath.Join(l.sysctls, strings.ReplaceAll(s, "/", ".")), target: "/proc/sys/" + s})
	}
	overlaid := map[string]bool{}
	for _, p := range kubeletHostPaths() {
		src := filepath.Join(l.private, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "-"))
		if exists(p) {
			mounts = append(mounts, privateMount{src: src, target: p})
			continue
		}
		parent := filepath.Dir(p)
		for parent != "/" && !exists(parent) {
			parent = filepath.Dir(parent)
		}
		if !overlaid[parent] {
			overlaid[parent] = true
			src = filepath.Join(l.private, "overlay"+strings.ReplaceAll(parent, "/", "-"))
			mounts = append(mounts, privateMount{src: src, target: parent, overlay: true})
		}
	}
	return mounts
}

// prepare makes each mount's source: the sysctl files hold the host's
// current values, so the kubelet reads what the host has.
func (m privateMount) prepare() error {
	switch {
	case m.overlay:
		for _, d := range []string{"upper", "work"} {
			if err := os.MkdirAll(filepath.Join(m.src, d), 0o755); err != nil {
				return fmt.Errorf("create overlay dir: %w", err)
			}
		}
	case strings.HasPrefix(m.target, "/proc/sys/"):
		value, err := os.ReadFile(m.target)
		if err != nil {
			return fmt.Errorf("read sysctl: %w", err)
		}
		if err := os.WriteFile(m.src, value, 0o644); err != nil {
			return fmt.Errorf("write sysctl copy: %w", err)
		}
	default:
		if err := os.MkdirAll(m.src, 0o755); err != nil {
			return fmt.Errorf("create private dir: %w", err)
		}
	}
	return nil
}

// command is the mount(8) command line for the namespace script.
func (m privateMount) command() (string, error) {
	if !m.overlay {
		return "mount --bind " + shellQuote(m.src) + " " + shellQuote(m.target), nil
	}
	if strings.ContainsAny(m.src+m.target, ",:") {
		return "", fmt.Errorf("overlay paths %s and %s must not contain ',' or ':'", m.src, m.target)
	}
	opts := "lowerdir=" + m.target + ",upperdir=" + m.src + "/upper,workdir=" + m.src + "/work"
	return "mount -t overlay overlay -o " + shellQuote(opts) + " " + shellQuote(m.target), nil
}

// namespaceScript is run by `unshare --mount --propagation private` as the
// kubelet's first process: it makes the private mounts and execs the
// kubelet with its arguments. Any failed mount stops it before the kubelet
// starts, so a kubelet never runs with the host's view.
func namespaceScript(mounts []privateMount) (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# The kubelet's private mount namespace: nothing mounted here reaches the host.\nset -eu\n")
	for _, m := range mounts {
		line, err := m.command()
		if err != nil {
			return "", err
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("exec \"$@\"\n")
	return b.String(), nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeKubeletFiles prepares the private mounts and writes the config and
// the namespace script.
func writeKubeletFiles(p kubeletConfigParams) error {
	mounts := privateMounts(p.layout, exists)
	var errs []error
	for _, m := range mounts {
		errs = append(errs, m.prepare())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	script, err := namespaceScript(mounts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.layout.script, []byte(script), 0o755); err != nil {
		return fmt.Errorf("write namespace script: %w", err)
	}
	cfg, err := kubeletConfig(p)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.layout.config, cfg, 0o644); err != nil {
		return fmt.Errorf("write kubelet config: %w", err)
	}
	return nil
}

// kubeletCgroupRoot is the kubelet's own cgroup root, named after the
// runtime's network slot: unique among live runtimes, and a crashed run's
// leftover is found again by the next runtime with that slot.
func kubeletCgroupRoot(slot netSlot) string {
	return "/" + kubeletCgroupRootPrefix + strconv.Itoa(slot.n)
}

const kubeletCgroupRootPrefix = "crie-kubelet-"
