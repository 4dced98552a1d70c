package metrics_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/metrics"
)

// fixedNow is the fixtures' clock: every timestamp in them derives from it.
var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// hexID makes a 64-digit ID from a short distinct seed.
func hexID(seed string) string { return seed + strings.Repeat("0", 64-len(seed)) }

// sandbox is a pod sandbox record as the lookup engine caches it.
func sandbox(seed, namespace, name, uid, ip string, labels map[string]string) enrich.Record {
	created := fixedNow.Add(-time.Hour)
	id := hexID(seed)
	pod := &enrich.Pod{SandboxID: id, Name: name, Namespace: namespace, UID: uid, State: "ready",
		Labels: labels, IP: ip, HostNetwork: ip == "", CreatedAt: &created}
	return enrich.Record{ID: id, ShortID: id[:12], Name: name, State: "ready", Runtime: "containerd",
		Image: enrich.Image{Name: "registry.k8s.io/pause:3.10"}, IsPodSandbox: true, Pod: pod,
		CgroupPath: "/kubepods/burstable/pod" + uid + "/" + id, PodSource: enrich.PodSourceSandboxStatus}
}

// container is a container record in sb's pod.
func container(seed, name, image string, sb enrich.Record) enrich.Record {
	id := hexID(seed)
	pod := *sb.Pod
	return enrich.Record{ID: id, ShortID: id[:12], Name: name, State: "running", Runtime: "containerd",
		Image: enrich.Image{Name: image, ID: "sha256:" + hexID("1"+seed)}, Pod: &pod,
		CgroupPath: "/kubepods/burstable/pod" + pod.UID + "/" + id, PodSource: enrich.PodSourceSandboxStatus}
}

// fixture is the daemon's metrics wired the way assemble wires them, over a
// cache of known records.
type fixture struct {
	metrics *metrics.Metrics
	cache   *cache.Cache
	web     enrich.Record // the sandbox of shop/web-0
	app     enrich.Record // a container of shop/web-0
}

// newFixture caches two pods (one on the host network), an orphan container
// whose sandbox is not cached and a deleted container, and touches every
// series the daemon reports once so each family shows on the page.
func newFixture(t *testing.T, podLabelAllowlist ...string) *fixture {
	t.Helper()
	f := &fixture{metrics: metrics.New(metrics.BuildInfo{Version: "v1.2.3-test"}), cache: cache.New()}
	f.web = sandbox("a1", "shop", "web-0", "0b6c3e4e-1111-4c8e-9d3a-000000000001", "10.88.0.5",
		map[string]string{"app": "web", "app.kubernetes.io/name": "web-shop", "tier": "frontend"})
	f.app = container("c1", "app", "docker.io/library/nginx:1.27", f.web)
	agent := sandbox("a2", "kube-system", "agent-0", "0b6c3e4e-2222-4c8e-9d3a-000000000002", "", map[string]string{"app": "agent"})
	orphanPod := sandbox("a3", "batch", "job-7", "0b6c3e4e-3333-4c8e-9d3a-000000000003", "", nil)
	orphan := container("c4", "worker", "docker.io/library/busybox:1.36", orphanPod)
	orphan.Pod.HostNetwork, orphan.PodSource = false, enrich.PodSourceContainerLabels
	for _, rec := range []enrich.Record{f.web, f.app, container("c2", "sidecar", "docker.io/library/envoy:v1.31", f.web),
		agent, container("c3", "agent", "docker.io/library/busybox:1.36", agent), orphan,
		container("c5", "gone", "docker.io/library/busybox:1.36", agent)} {
		f.cache.Put(rec)
	}
	f.cache.MarkDeleted(hexID("c5"), time.Time{})
	f.metrics.WatchComponents(f.cacheStats, func() metrics.LookupStats {
		return metrics.LookupStats{Queued: 2, InFlight: 1, Negative: 3, Waiting: 1}
	})
	f.metrics.WatchRecords(f.cache, podLabelAllowlist)
	touchEverySeries(f.metrics)
	return f
}

func (f *fixture) cacheStats() metrics.CacheStats {
	c, s, d := f.cache.Counts()
	return metrics.CacheStats{Containers: c, Sandboxes: s, Deleted: d, Evictions: f.cache.Evictions()}
}

func touchEverySeries(m *metrics.Metrics) {
	m.ObserveRPC("ContainerStatus", codes.OK, 1500*time.Microsecond)
	m.ObserveRPC("ContainerStatus", codes.OK, 3*time.Millisecond)
	m.ObserveRPC("PodSandboxStatus", codes.DeadlineExceeded, 2*time.Second)
	m.LookupDone("container")
	m.LookupDone("sandbox")
	m.LookupFailed("pod_sandbox_status", "deadline_exceeded")
	m.FallbackHit(string(enrich.PodSourceSandboxCache))
	m.Retry("PodSandboxStatus", "deadline_exceeded")
	m.Waited("not_started")
	m.OnDemandRefused()
	m.CgroupEvent("added")
	m.RuntimeEvent("CONTAINER_STARTED_EVENT")
	m.ContainerdEvent("task_start")
	m.EventStreamState(true)
	m.EventStreamReconnect()
	m.EventSource("events")
	m.RelistDone(true, 1, 2)
	m.RelistDone(false, 0, 0)
	m.Synced(fixedNow)
	m.Trimmed(4)
	m.Ready(true)
}

// scrape returns the page the daemon's /metrics handler serves.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape = %d, %v: %s", resp.StatusCode, err, body)
	}
	return string(body)
}

// ownFamilies keeps the lines of the cri_enricherd_ families, dropping the
// Go and process collectors, whose series depend on the machine.
func ownFamilies(page string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		line := sc.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if strings.HasPrefix(name, "cri_enricherd_") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// requirePromtool returns promtool's path. It skips when promtool is
// missing, except under CRI_ENRICHERD_E2E=1, where that is a failure
// (hack/install-promtool.sh installs it).
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("CRI_ENRICHERD_E2E") == "1" {
		t.Fatalf("CRI_ENRICHERD_E2E=1 but promtool is missing (run hack/install-promtool.sh): %v", err)
	}
	t.Skipf("promtool is missing (run hack/install-promtool.sh): %v", err)
	return ""
}

// promtool runs promtool with args and stdin and fails the test unless it
// exits 0 and prints nothing but its success lines.
func promtool(t *testing.T, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(requirePromtool(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && !strings.HasPrefix(line, "Checking ") && !strings.HasPrefix(line, "  SUCCESS") {
			problems = append(problems, line)
		}
	}
	if err != nil || len(problems) > 0 {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// writeTemp writes data to a file in a fresh temporary directory.
func writeTemp(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
