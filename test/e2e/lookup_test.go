package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// TestLookup_FewestCallsThatStayCorrect creates pods on a running daemon
// and counts, on the runtime's side of the socket, the status calls naming
// each of the test's IDs: one PodSandboxStatus per pod and one
// ContainerStatus per container, once it started (before that its record is
// a partial one built from its CREATED event or a List filtered by its ID),
// plus counted retries; and no call about them, nor a List of the whole
// node, while nothing changes. Calls about other IDs (cgroups of other
// runtimes on this shared host) are only logged. It also checks which
// source fed the lookups.
func TestLookup_FewestCallsThatStayCorrect(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) { testFewestCalls(t, v) })
	}
}

func testFewestCalls(t *testing.T, v harness.Variant) {
	rt := startRuntime(t, v)
	proxy := startProxy(t, rt)
	d := startDaemon(t, proxy.Endpoint(), "--runtime-relist-interval", "1h")
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
	retries := m.Sum("cri_enricherd_lookup_retries_total")
	t.Logf("%s: the runtime received %d ContainerStatus, %d PodSandboxStatus, %d ListContainers, %d ListPodSandbox (%v retries)",
		v.Name, proxy.Calls("ContainerStatus"), proxy.Calls("PodSandboxStatus"),
		proxy.Calls("ListContainers"), proxy.Calls("ListPodSandbox"), retries)
	checkOneStatusCallPerID(t, proxy, all, int(retries))
	wantMode := "containerd" // containerd's own events
	if v.Name != harness.Containerd16 {
		wantMode = "events"
	}
	if got := m.Sum("cri_enricherd_event_source_info", `mode="`+wantMode+`"`); got != 1 {
		t.Errorf("event_source_info{mode=%q} = %v, want 1", wantMode, got)
	}
	time.Sleep(2500 * time.Millisecond) // the cgroup watcher's grace for events on 2.x
	before := ownCalls(proxy, all)
	time.Sleep(3 * time.Second)
	if after := ownCalls(proxy, all); after != before {
		t.Errorf("calls about the test's pods or the whole node went from %d to %d while nothing changed", before, after)
	}
}

func startProxy(t *testing.T, rt *harness.Runtime) *harness.CRIProxy {
	t.Helper()
	proxy, err := harness.NewCRIProxy(t.TempDir(), rt.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	return proxy
}

// checkOneStatusCallPerID fails unless each sandbox of pods was named by at
// most one status call and each container by at most one, plus retries.
func checkOneStatusCallPerID(t *testing.T, proxy *harness.CRIProxy, pods []*harness.Pod, retries int) {
	t.Helper()
	status := func(id string) int {
		return proxy.CallsFor("ContainerStatus", id) + proxy.CallsFor("PodSandboxStatus", id)
	}
	extra := 0
	for _, p := range pods {
		extra += max(status(p.SandboxID)-1, 0)
		for _, c := range p.Containers {
			extra += max(status(c.ID)-1, 0)
			if n := proxy.CallsFor("PodSandboxStatus", c.ID); n > 0 {
				t.Errorf("container %s of %s was asked as a sandbox %d times", c.ID, p.Name, n)
			}
		}
	}
	if extra > retries {
		for _, p := range pods {
			t.Logf("%s: sandbox %d status calls; containers %v", p.Name, status(p.SandboxID), mapIDs(p, status))
		}
		t.Errorf("%d status calls beyond one per sandbox and container, more than the %d retries", extra, retries)
	}
}

func mapIDs(p *harness.Pod, f func(string) int) []int {
	out := make([]int, len(p.Containers))
	for i, c := range p.Containers {
		out[i] = f(c.ID)
	}
	return out
}

// ownCalls counts the calls naming one of pods' IDs and the Lists of the
// whole node.
func ownCalls(proxy *harness.CRIProxy, pods []*harness.Pod) int {
	rpcs := []string{"ContainerStatus", "PodSandboxStatus", "ListContainers", "ListPodSandbox"}
	n := 0
	for _, rpc := range rpcs {
		n += proxy.CallsFor(rpc, "")
		for _, p := range pods {
			n += proxy.CallsFor(rpc, p.SandboxID)
			for _, c := range p.Containers {
				n += proxy.CallsFor(rpc, c.ID)
			}
		}
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
// must be served, with its pod, for at most one status call per sandbox and
// per container (once it started, for its PID), counted by ID by a proxy on
// the runtime's side of the socket.
func TestLookup_BurstOfPodsMissesNone(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			rt := startRuntime(t, v)
			proxy := startProxy(t, rt)
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
			m, _ := d.metrics()
			retries := m.Sum("cri_enricherd_lookup_retries_total")
			t.Logf("%s: the runtime received %d ContainerStatus and %d PodSandboxStatus for %d pods of one container, and %d + %d List calls (%v retries, %v waits)",
				v.Name, proxy.Calls("ContainerStatus"), proxy.Calls("PodSandboxStatus"), n,
				proxy.Calls("ListContainers"), proxy.Calls("ListPodSandbox"), retries, m.Sum("cri_enricherd_lookup_waits_total"))
			checkOneStatusCallPerID(t, proxy, pods, int(retries))
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
