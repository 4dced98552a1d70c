package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestKubeletConfig_KeepsTheKubeletOffSharedHostState(t *testing.T) {
	l := newKubeletLayout("/tmp/crie-x/kubelet-1")
	data, err := kubeletConfig(kubeletConfigParams{
		layout: l, ports: kubeletPorts{server: 1001, readOnly: 1002, healthz: 1003},
		endpoint: "unix:///tmp/crie-x/containerd.sock", cgroupRoot: "/crie-kubelet-7",
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"kind":                     "KubeletConfiguration",
		"cgroupRoot":               "/crie-kubelet-7",
		"cgroupDriver":             "cgroupfs",
		"makeIPTablesUtilChains":   false,
		"address":                  "127.0.0.1",
		"healthzBindAddress":       "127.0.0.1",
		"port":                     float64(1001),
		"readOnlyPort":             float64(1002),
		"healthzPort":              float64(1003),
		"staticPodPath":            l.manifests,
		"podLogsDir":               l.podLogs,
		"volumePluginDir":          l.volumePlugins,
		"containerRuntimeEndpoint": "unix:///tmp/crie-x/containerd.sock",
		"oomScoreAdj":              float64(0),
		"failSwapOn":               false,
		"failCgroupV1":             false,
	}
	for key, v := range want {
		if cfg[key] != v {
			t.Errorf("%s = %v, want %v", key, cfg[key], v)
		}
	}
	args := strings.Join(kubeletArgs(l, "node-a"), " ")
	for _, flag := range []string{"--root-dir=" + l.root, "--cert-dir=" + l.certs, "--hostname-override=node-a", "--config=" + l.config} {
		if !strings.Contains(args, flag) {
			t.Errorf("kubelet args %q lack %s", args, flag)
		}
	}
}

func TestPrivateMounts_BindOverExistingPathsAndOverlayTheParentOfMissingOnes(t *testing.T) {
	l := newKubeletLayout("/k")
	onHost := map[string]bool{"/": true, "/var": true, "/var/lib": true, "/var/log": true, "/var/log/containers": true, "/usr": true}
	mounts := privateMounts(l, func(p string) bool { return onHost[p] })
	got := map[string]privateMount{}
	for _, m := range mounts {
		got[m.target] = m
	}
	for _, s := range kubeletSysctls() {
		if m, ok := got["/proc/sys/"+s]; !ok || m.overlay || !strings.HasPrefix(m.src, l.sysctls+"/") {
			t.Errorf("sysctl %s mount = %+v, want a bind of a file in %s", s, m, l.sysctls)
		}
	}
	cases := []struct {
		target  string
		overlay bool
	}{
		{"/var/log/containers", false}, // exists: an empty dir over it
		{"/var/lib", true},             // /var/lib/kubelet does not: overlay its parent
		{"/usr", true},                 // neither /usr/libexec nor its kubernetes dir exist
	}
	for _, c := range cases {
		m, ok := got[c.target]
		if !ok || m.overlay != c.overlay || !strings.HasPrefix(m.src, l.private+"/") {
			t.Errorf("mount over %s = %+v (found %t), want overlay=%t from %s", c.target, m, ok, c.overlay, l.private)
		}
	}
	if _, ok := got["/var/lib/kubelet"]; ok {
		t.Error("a bind over /var/lib/kubelet would need it on the host")
	}
	if n := len(mounts); n != len(kubeletSysctls())+len(cases) {
		t.Errorf("%d mounts, want %d: %+v", n, len(kubeletSysctls())+len(cases), mounts)
	}
}

func TestNamespaceScript_MountsInOrderAndNeverExecsAfterAFailedMount(t *testing.T) {
	mounts := []privateMount{
		{src: "/k/sysctl/kernel.panic", target: "/proc/sys/kernel/panic"},
		{src: "/k/private/overlay-var-lib", target: "/var/lib", overlay: true},
	}
	script, err := namespaceScript(mounts)
	if err != nil {
		t.Fatal(err)
	}
	for _, mountFails := range []bool{false, true} {
		dir := t.TempDir()
		// A fake mount(8) records its arguments and fails on demand.
		fake := "#!/bin/sh\necho \"$*\" >>" + filepath.Join(dir, "mounts") + "\n"
		if mountFails {
			fake += "exit 32\n"
		}
		writeExecutable(t, filepath.Join(dir, "mount"), fake)
		writeExecutable(t, filepath.Join(dir, "enter.sh"), script)
		marker := filepath.Join(dir, "kubelet-ran")
		cmd := exec.Command("/bin/sh", filepath.Join(dir, "enter.sh"), "/bin/sh", "-c", "touch "+marker)
		cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
		runErr := cmd.Run()
		recorded, _ := os.ReadFile(filepath.Join(dir, "mounts"))
		ran := exists(marker)
		if mountFails {
			if runErr == nil || ran || strings.Count(string(recorded), "\n") != 1 {
				t.Errorf("failing mount: err=%v, command ran=%t, mounts tried:\n%s; want an error after the first mount and no command", runErr, ran, recorded)
			}
			continue
		}
		want := "--bind /k/sysctl/kernel.panic /proc/sys/kernel/panic\n" +
			"-t overlay overlay -o lowerdir=/var/lib,upperdir=/k/private/overlay-var-lib/upper,workdir=/k/private/overlay-var-lib/work /var/lib\n"
		if runErr != nil || !ran || string(recorded) != want {
			t.Errorf("err=%v, command ran=%t, mounts:\n%s\nwant no error, the command run, and mounts:\n%s", runErr, ran, recorded, want)
		}
	}
}

func TestNamespaceScript_RefusesOverlayPathsMountCannotParse(t *testing.T) {
	if _, err := namespaceScript([]privateMount{{src: "/k/a,b", target: "/var/lib", overlay: true}}); err == nil {
		t.Error("script accepted an overlay source with a comma")
	}
}

func writeExecutable(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
