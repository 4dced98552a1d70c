package e2e

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// checkPromtool fails t unless `promtool check metrics` accepts exposition
// without reporting anything. A missing promtool skips the test, or fails it
// under CRI_ENRICHERD_E2E=1 (hack/install-promtool.sh installs it).
func checkPromtool(t *testing.T, exposition string) {
	t.Helper()
	cmd := exec.Command(requirePromtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv(harness.EnvE2E) == "1" {
			t.Fatalf("%s=1 but promtool is missing (run hack/install-promtool.sh): %v", harness.EnvE2E, err)
		}
		t.Skipf("promtool is missing (run hack/install-promtool.sh): %v", err)
	}
	return path
}

// errNotYet makes eventually try again.
var errNotYet = errors.New("not on the metrics page yet")

var seriesLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// labelSets returns the label sets of the named metric's samples in exposition.
func labelSets(exposition, name string) []map[string]string {
	var out []map[string]string
	for _, line := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels := map[string]string{}
		for _, m := range seriesLabel.FindAllStringSubmatch(rest[:strings.LastIndexByte(rest, '}')], -1) {
			labels[m[1]] = m[2]
		}
		out = append(out, labels)
	}
	return out
}

func withLabel(sets []map[string]string, key, value string) map[string]string {
	for _, s := range sets {
		if s[key] == value {
			return s
		}
	}
	return nil
}

func podLabelKeys(labels map[string]string) []string {
	var keys []string
	for k := range labels {
		if strings.HasPrefix(k, "label_") {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestMetrics_LiveExpositionPassesPromtool scrapes a daemon running on a real
// runtime: the page passes `promtool check metrics` untouched, the new
// container has its info series joinable on its cgroup path, and pod labels
// appear only once allowlisted.
func TestMetrics_LiveExpositionPassesPromtool(t *testing.T) {
	requirePromtool(t) // fail or skip before starting a runtime
	rt := startRuntime(t, harness.Variants()[0])
	d := startDaemon(t, rt.Endpoint())
	d.waitReady(60 * time.Second)
	pod := runPod(t, rt, harness.PodSpec{
		Name: "metrics-0", Namespace: "obs", Labels: map[string]string{"app.kubernetes.io/name": "metrics"},
		Containers: []harness.ContainerSpec{{Name: "app"}},
	})
	id := pod.Containers[0].ID
	rec := waitRecord(t, d, id)

	var page string
	eventually(t, 10*time.Second, "container_info of "+id[:12], func() error {
		_, page = d.metrics()
		if withLabel(labelSets(page, "cri_enricherd_container_info"), "container_id", id) == nil {
			return errNotYet
		}
		return nil
	})
	checkPromtool(t, page)

	info := withLabel(labelSets(page, "cri_enricherd_container_info"), "container_id", id)
	want := map[string]string{"container": "app", "pod": "metrics-0", "namespace": "obs", "pod_uid": pod.UID,
		"cgroup_path": rec.CgroupPath, "is_pod_sandbox": "false", "image": rec.Image.Name}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("container_info %s = %q, want %q (series %v)", k, info[k], v, info)
		}
	}
	if info["cgroup_path"] == "" || len(podLabelKeys(info)) > 0 {
		t.Errorf("container_info = %v, want a cgroup_path and no label_ labels", info)
	}
	podInfo := withLabel(labelSets(page, "cri_enricherd_pod_info"), "sandbox_id", pod.SandboxID)
	if podInfo == nil || podInfo["pod"] != "metrics-0" || podInfo["pod_ip"] != pod.IP || len(podLabelKeys(podInfo)) > 0 {
		t.Errorf("pod_info = %v, want pod metrics-0 with ip %s and no label_ labels by default", podInfo, pod.IP)
	}

	allowed := startDaemon(t, rt.Endpoint(), "--metrics-pod-label-allowlist", "app.kubernetes.io/name")
	allowed.waitReady(60 * time.Second)
	eventually(t, 10*time.Second, "pod_info with label_app_kubernetes_io_name", func() error {
		_, page = allowed.metrics()
		p := withLabel(labelSets(page, "cri_enricherd_pod_info"), "sandbox_id", pod.SandboxID)
		if p == nil || p["label_app_kubernetes_io_name"] != "metrics" {
			return errNotYet
		}
		return nil
	})
	checkPromtool(t, page)
}
