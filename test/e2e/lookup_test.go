package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// TestLookup_FewestCallsThatStayCorrect creates pods on a running daemon
// and checks the CRI call counters: one PodSandboxStatus per pod and two
// ContainerStatus per container (one as soon as it is created, from its
// event or its cgroup, before its first process runs; one once it started,
// for its PID), plus counted retries; and no call at all while nothing
// changes. It also checks which source fed the lookups.
func TestLookup_FewestCallsThatStayCorrect(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) { testFewestCalls(t, v) })
	}
}

func testFewestCalls(t *testing.T, v harness.Variant) {
	rt := startRuntime(t, v)
	d := startDaemon(t, rt.Endpoint(), "--runtime-relist-interval", "1h")
	d.waitReady(60 * time.Second)
	const pods, perPod = 4, 3
	var all []*harness.Pod
	for p := 0; p < pods; p++ {
		spec := harness.PodSpec{Name: fmt.Sprintf("calls-%d", p), Namespace: "calls"}
		for c := 0; c < perPod; c++ {
			spec.Containers = append(spec.Containers, harness.ContainerSpec{Name: fmt.Sprintf("c%d", c)})
		}
		all = append(all, runPod(t, rt, spec))
	}
	waitAllRecords(t, d, all)
	time.Sleep(500 * time.Millisecond) // let lookups triggered by late cgroup events finish
	m, _ := d.metrics()
	calls := func(rpc string) float64 { return m.Sum("cri_enricherd_cri_requests_total", `rpc="`+rpc+`"`) }
	retries := func(rpc string) float64 { return m.Sum("cri_enricherd_lookup_retries_total", `rpc="`+rpc+`"`) }
	t.Logf("%s: ContainerStatus %v (retries %v), PodSandboxStatus %v (retries %v), ListContainers %v, ListPodSandbox %v",
		v.Name, calls("ContainerStatus"), retries("ContainerStatus"), calls("PodSandboxStatus"), retries("PodSandboxStatus"),
		calls("ListContainers"), calls("ListPodSandbox"))
	const perContainer = 2.0
	if got, limit := calls("ContainerStatus"), perContainer*float64(pods*perPod)+retries("ContainerStatus"); got > limit {
		t.Errorf("ContainerStatus calls = %v, want <= %v per container plus counted retries (%v)", got, perContainer, limit)
	}
	if got, limit := calls("PodSandboxStatus"), float64(pods)+retries("PodSandboxStatus"); got > limit {
		t.Errorf("PodSandboxStatus calls = %v, want <= one per pod plus counted retries (%v)", got, limit)
	}
	wantMode := "cgroup"
	if v.Name != harness.Containerd16 {
		wantMode = "events"
	}
	if got := m.Sum("cri_enricherd_event_source_info", `mode="`+wantMode+`"`); got != 1 {
		t.Errorf("event_source_info{mode=%q} = %v, want 1", wantMode, got)
	}
	time.Sleep(2500 * time.Millisecond) // the cgroup watcher's grace for events on 2.x
	before, _ := d.metrics()
	time.Sleep(3 * time.Second)
	after, _ := d.metrics()
	if b, a := totalCalls(before), totalCalls(after); a != b {
		t.Errorf("CRI calls went from %v to %v while nothing changed", b, a)
	}
}

// totalCalls counts the CRI calls that the daemon makes for lookups.
func totalCalls(m promtext.Samples) float64 {
	n := 0.0
	for _, rpc := range []string{"ContainerStatus", "PodSandboxStatus", "ListContainers", "ListPodSandbox"} {
		n += m.Sum("cri_enricherd_cri_requests_total", `rpc="`+rpc+`"`)
	}
	return n
}

func waitAllRecords(t *testing.T, d *daemon, pods []*harness.Pod) {
	t.Helper()
	for _, p := range pods {
		waitRecord(t, d, p.SandboxID)
		for _, c := range p.Containers {
			waitRecord(t, d, c.ID)
		}
	}
}

// TestLookup_BurstOfPodsMissesNone creates 30 pods back to back (two
// creators in parallel) while the daemon runs: every sandbox and container
// must be served, with its pod, for at most one PodSandboxStatus per pod and
// two ContainerStatus per container (created, then started for its PID),
// counted by a proxy on the runtime's side of the socket.
func TestLookup_BurstOfPodsMissesNone(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			rt := startRuntime(t, v)
			proxy, err := harness.NewCRIProxy(t.TempDir(), rt.Endpoint())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = proxy.Close() })
			d := startDaemon(t, proxy.Endpoint())
			d.waitReady(60 * time.Second)
			const n = 30
			pods := make([]*harness.Pod, n)
			var wg sync.WaitGroup
			for w := 0; w < 2; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := w; i < n; i += 2 {
						pods[i] = runPodNoFatal(t, rt, harness.PodSpec{
							Name: fmt.Sprintf("burst-%d", i), Namespace: "burst",
							Containers: []harness.ContainerSpec{{Name: "app"}},
						})
					}
				}(w)
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			waitAllRecords(t, d, pods)
			for _, p := range pods {
				rec, err := d.Record(p.Containers[0].ID)
				if err != nil || rec.Pod == nil || rec.Pod.Name != p.Name {
					t.Errorf("container of %s: %+v, %v", p.Name, rec.Pod, err)
				}
			}
			const perContainer = 2
			cs, pss := proxy.Calls("ContainerStatus"), proxy.Calls("PodSandboxStatus")
			t.Logf("%s: the runtime received %d ContainerStatus and %d PodSandboxStatus for %d pods of one container, and %d + %d List calls",
				v.Name, cs, pss, n, proxy.Calls("ListContainers"), proxy.Calls("ListPodSandbox"))
			m, _ := d.metrics()
			t.Logf("daemon: waits %v relists %v List %v", m.Sum("cri_enricherd_lookup_waits_total"), m.Sum("cri_enricherd_relists_total"), m.Sum("cri_enricherd_cri_requests_total", `rpc="ListContainers"`))
			if cs > perContainer*n || pss > n {
				t.Errorf("runtime received %d ContainerStatus and %d PodSandboxStatus, want at most %d and %d", cs, pss, perContainer*n, n)
			}
		})
	}
}

// runPodNoFatal is runPod for goroutines other than the test's.
func runPodNoFatal(t *testing.T, rt *harness.Runtime, spec harness.PodSpec) *harness.Pod {
	ctx, cancel := contextWithTimeout(2 * time.Minute)
	defer cancel()
	p, err := rt.RunPod(ctx, spec)
	if err != nil {
		t.Errorf("run pod %s: %v", spec.Name, err)
	}
	return p
}

// TestLookup_RestartedDaemonServesOnlyWhatStillExists stops the daemon,
// removes a container while it is down, starts it again: the bootstrap
// relist serves the survivors and not the removed one.
func TestLookup_RestartedDaemonServesOnlyWhatStillExists(t *testing.T) {
	v := harness.Variants()[0]
	rt := startRuntime(t, v)
	p := runPod(t, rt, harness.PodSpec{Name: "restart-0", Namespace: "r",
		Containers: []harness.ContainerSpec{{Name: "keep"}, {Name: "drop"}}})
	d := startDaemon(t, rt.Endpoint())
	d.waitReady(60 * time.Second)
	waitAllRecords(t, d, []*harness.Pod{p})
	d.Stop()
	ctx, cancel := contextWithTimeout(time.Minute)
	defer cancel()
	if err := rt.RemoveContainer(ctx, p.ContainerID("drop")); err != nil {
		t.Fatal(err)
	}
	d2 := startDaemon(t, rt.Endpoint())
	d2.waitReady(60 * time.Second)
	waitRecord(t, d2, p.ContainerID("keep"))
	if code, _ := d2.Get("/v1/containers/"+p.ContainerID("drop"), new(any)); code != 404 {
		t.Errorf("container removed while the daemon was down: GET = %d, want 404", code)
	}
}
