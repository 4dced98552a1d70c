package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
	"github.com/cri-enricherd/cri-enricherd/test/internal/daemonproc"
)

// The chart's own pod, run by a real kubelet: the image `make image` builds
// (here with buildah, through hack/image-archive.sh, into an OCI archive
// imported into the test's containerd), the DaemonSet's pod template that
// `helm template` renders, run unchanged as a static pod but for the
// rewrites listed in chartPodRewrites.

const (
	chartDir     = "../../deploy/helm/cri-enricherd"
	chartImage   = "cri-enricherd.test/cri-enricherd:e2e"
	dashboardRel = "../../deploy/helm/cri-enricherd/dashboards/cri-enricherd.json"
)

// chartPodRewrites are the only changes made to the rendered pod template,
// each needed because a standalone kubelet has no API server.
var chartPodRewrites = []string{
	"the config ConfigMap volume becomes a hostPath of the rendered config file (no API server serves ConfigMaps)",
	"the DaemonSet's pod template becomes a static Pod (no API server runs controllers)",
	"serviceAccountName is dropped (the kubelet refuses static pods that name a service account; the daemon's token is not mounted anyway)",
}

func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CRI_ENRICHERD_HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if os.Getenv(harness.EnvE2E) == "1" {
		t.Fatal("helm not found: set CRI_ENRICHERD_HELM (make e2e installs it)")
	}
	t.Skip("helm not found")
	return ""
}

// renderedChart is what the test takes from `helm template`.
type renderedChart struct {
	daemonSet  appsv1.DaemonSet
	configFile string // the ConfigMap's config.yaml
	ruleGroups []any  // the PrometheusRule's spec.groups
}

// renderChart renders the chart with values (YAML, as a user writes them).
func renderChart(t *testing.T, values string) renderedChart {
	t.Helper()
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(helmBinary(t), "template", "cri-enricherd", chartDir, "--namespace", "cri-enricherd", "-f", valuesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var rc renderedChart
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(out), -1) {
		var head struct {
			Kind string `json:"kind"`
			Data map[string]string
			Spec struct {
				Groups []any `json:"groups"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered document: %v", err)
		}
		switch head.Kind {
		case "DaemonSet":
			if err := yaml.UnmarshalStrict([]byte(doc), &rc.daemonSet); err != nil {
				t.Fatalf("rendered DaemonSet: %v", err)
			}
		case "ConfigMap":
			if cfg, ok := head.Data["config.yaml"]; ok {
				rc.configFile = cfg
			}
		case "PrometheusRule":
			rc.ruleGroups = head.Spec.Groups
		}
	}
	if rc.daemonSet.Name == "" || rc.configFile == "" || rc.ruleGroups == nil {
		t.Fatalf("rendered chart lacks the DaemonSet, the config or the rules:\n%s", out)
	}
	return rc
}

// chartPod turns the DaemonSet's pod template into a static pod, with only
// the rewrites chartPodRewrites lists.
func chartPod(t *testing.T, rc renderedChart) *corev1.Pod {
	t.Helper()
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configPath, []byte(rc.configFile), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := rc.daemonSet.Spec.Template
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: rc.daemonSet.Name, Namespace: rc.daemonSet.Namespace,
			Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec: *tmpl.Spec.DeepCopy(),
	}
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Fatal("the pod template mounts a service account token: dropping its service account would change the pod")
	}
	pod.Spec.ServiceAccountName = ""
	file := corev1.HostPathFile
	rewritten := false
	for i, v := range pod.Spec.Volumes {
		if v.ConfigMap != nil {
			pod.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: configPath, Type: &file}}
			rewritten = true
		}
	}
	if !rewritten {
		t.Fatal("the pod template has no ConfigMap volume to rewrite")
	}
	// The ConfigMap is mounted as a directory holding config.yaml; a file
	// hostPath is mounted at the file's own path instead.
	for i := range pod.Spec.Containers {
		for j, m := range pod.Spec.Containers[i].VolumeMounts {
			if m.Name == "config" {
				pod.Spec.Containers[i].VolumeMounts[j].MountPath = filepath.Join(m.MountPath, "config.yaml")
			}
		}
	}
	return pod
}

// buildChartImage builds the image from the Dockerfile and imports it.
func buildChartImage(ctx context.Context, t *testing.T, rt *harness.Runtime) {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "image.tar")
	cmd := exec.CommandContext(ctx, "bash", "../../hack/image-archive.sh", archive, chartImage)
	cmd.Env = append(os.Environ(), "VERSION=e2e")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the image: %v\n%s", err, out)
	}
	if err := rt.ImportImage(ctx, archive, chartImage); err != nil {
		t.Fatal(err)
	}
}

// chartValues point the chart at the test's runtime and API directory;
// nothing else is set but what the test needs to see quickly.
func chartValues(rt *harness.Runtime, apiDir string) string {
	return fmt.Sprintf(`image:
  registry: cri-enricherd.test
  repository: cri-enricherd
  tag: e2e
  pullPolicy: Never
runtime:
  socketDir: %s
  socketName: containerd.sock
apiSocket:
  dir: %s
prometheusRule:
  enabled: true
config:
  log:
    level: debug
  runtime:
    relist_interval: 15s
`, rt.Dir(), apiDir)
}

// TestChart_ThePodTheChartDescribesServesRecordsEqualToTheRuntime runs the
// daemon the way users do: the chart's pod under a real kubelet, without
// hostPID, with a read-only root, every capability dropped and host paths
// under /host. Its probes must pass under the kubelet, it must not restart,
// and through the socket it exposes on the host every kubelet-made record
// (its own included) equals the runtime's answers through a pod's whole
// life; a real Prometheus then scrapes it.
func TestChart_ThePodTheChartDescribesServesRecordsEqualToTheRuntime(t *testing.T) {
	t.Logf("rewrites of the rendered pod template: %s", strings.Join(chartPodRewrites, "; "))
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			e := startKubeletEnv(ctx, t, v)
			buildChartImage(ctx, t, e.rt)
			apiDir := t.TempDir()
			rc := renderChart(t, chartValues(e.rt, apiDir))
			pod := chartPod(t, rc)
			if err := e.k.ApplyPod(pod); err != nil {
				t.Fatal(err)
			}
			name := pod.Name + "-" + e.k.NodeName()
			readyCtx, readyCancel := context.WithTimeout(ctx, 3*time.Minute)
			running, err := e.k.WaitPod(readyCtx, name, podIsReady)
			readyCancel()
			if err != nil {
				t.Fatalf("the chart's pod never became ready: %v\n%s", err, e.k.LogTail())
			}
			d := daemonAt(t, filepath.Join(apiDir, "api.sock"), net.JoinHostPort(running.Status.PodIP, "9808"))
			testRecordsThroughAPodsLife(ctx, t, e, d, truthOptions{})
			assertScrapedByPrometheus(ctx, t, d, rc, e.k.NodeName())
			assertNeverRestarted(ctx, t, e.k, name)
		})
	}
}

func podIsReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// assertNeverRestarted checks the kubelet's own report: the pod is still
// ready and its container never restarted (no failed liveness probe, no
// crash) through the whole test.
func assertNeverRestarted(ctx context.Context, t *testing.T, k *harness.Kubelet, name string) {
	t.Helper()
	p, err := k.WaitPod(ctx, name, func(corev1.Pod) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if !podIsReady(p) {
		t.Errorf("the chart's pod is not ready at the end: %+v", p.Status.Conditions)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.RestartCount != 0 {
			t.Errorf("container %s restarted %d times", c.Name, c.RestartCount)
		}
	}
}

// assertScrapedByPrometheus starts a real Prometheus that scrapes the pod as
// a cluster's would (with the node label its service discovery adds) and
// evaluates the chart's rules: the target is up, every dashboard query and
// every rule evaluates without error, the lookup and info series have data,
// and no alert is pending or firing on the healthy node.
func assertScrapedByPrometheus(ctx context.Context, t *testing.T, d *daemon, rc renderedChart, node string) {
	t.Helper()
	p, err := harness.StartPrometheus(ctx, harness.PrometheusOptions{
		Interval:   time.Second,
		Targets:    []harness.ScrapeTarget{{Address: d.MetricsAddr, Labels: map[string]string{"node": node, "namespace": "cri-enricherd", "pod": "cri-enricherd"}}},
		RuleGroups: rc.ruleGroups,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	eventually(t, time.Minute, "two scrapes of the pod", func() error {
		s, err := p.Query(ctx, `count_over_time(up[1m])`)
		if err != nil || len(s) != 1 || s[0].Value < 2 {
			return fmt.Errorf("scrapes %v, %v", s, err)
		}
		return nil
	})
	if up, err := p.Query(ctx, "up"); err != nil || len(up) != 1 || up[0].Value != 1 {
		t.Errorf("up = %v, %v; want 1", up, err)
	}
	for _, expr := range dashboardQueries(t, node) {
		s, err := p.Query(ctx, expr)
		if err != nil {
			t.Errorf("dashboard query fails: %v", err)
			continue
		}
		if strings.Contains(expr, "lookups_total") || strings.Contains(expr, "_info{") {
			if len(s) == 0 {
				t.Errorf("dashboard query %q returns no data", expr)
			}
		}
	}
	eventually(t, 30*time.Second, "every rule evaluated", func() error {
		health, err := p.RuleHealth(ctx)
		if err != nil {
			return err
		}
		for name, h := range health {
			if h != "ok" {
				return fmt.Errorf("rule %s: %s", name, h)
			}
		}
		return nil
	})
	if alerts, err := p.Alerts(ctx); err != nil || len(alerts) > 0 {
		t.Errorf("alerts on a healthy node: %+v, %v", alerts, err)
	}
}

// dashboardQueries reads the chart's Grafana dashboard and fills its
// variables as Grafana would for this node.
func dashboardQueries(t *testing.T, node string) []string {
	t.Helper()
	data, err := os.ReadFile(dashboardRel)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer(`$node`, node, `$instance`, ".*", `$__rate_interval`, "1m")
	var out []string
	var walk func([]json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, fill.Replace(tg.Expr))
				}
			}
			var nested []json.RawMessage
			if len(p.Panels) > 0 && json.Unmarshal(p.Panels, &nested) == nil {
				walk(nested)
			}
		}
	}
	walk(dash.Panels)
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// daemonAt is a client of a daemon this test did not start: the chart's
// pod, reached through the socket it exposes on the host and its metrics
// port on the pod's address.
func daemonAt(t *testing.T, socket, metricsAddr string) *daemon {
	t.Helper()
	d := &daemon{Client: daemonproc.NewClient(socket, metricsAddr), t: t}
	eventually(t, time.Minute, "the chart's API socket", func() error {
		_, err := d.Get("/readyz", nil)
		return err
	})
	return d
}
