package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/harness"
)

// TestContainerdEvents_ServeACreatedContainerBeforeItStarts runs where the
// runtime streams no CRI events (containerd 1.6; 2.4 with runtime.events
// off): containerd's own /containers/create event makes the record, state
// created, between the kubelet's CreateContainer and StartContainer, without
// a status call; /tasks/start then gets its status asked once, PID and all.
// Records are read from the daemon's list, which never asks the runtime.
func TestContainerdEvents_ServeACreatedContainerBeforeItStarts(t *testing.T) {
	for _, v := range harness.Variants() {
		t.Run(v.Name, func(t *testing.T) {
			var flags []string
			if v.Name != harness.Containerd16 {
				flags = []string{"--runtime-events", "off"}
			}
			testCreatedBeforeStarted(t, v, flags)
		})
	}
}

func testCreatedBeforeStarted(t *testing.T, v harness.Variant, flags []string) {
	rt := startRuntime(t, v)
	proxy := startProxy(t, rt)
	d := startDaemon(t, proxy.Endpoint(), append(flags, "--runtime-relist-interval", "1h")...)
	d.waitReady(60 * time.Second)
	eventually(t, 30*time.Second, "the daemon subscribed to containerd's events", func() error {
		if proxy.Calls("Subscribe") == 0 {
			return fmt.Errorf("no Subscribe call at the runtime")
		}
		return nil
	})
	pod := runPod(t, rt, harness.PodSpec{Name: "early", Namespace: "events"})
	waitRecord(t, d, pod.SandboxID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := rt.CreateContainer(ctx, pod, harness.ContainerSpec{Name: "app"})
	if err != nil {
		t.Fatalf("%v\n%s", err, rt.LogTail())
	}
	rec := listedRecord(t, d, id, "created")
	if rec.PID != 0 || rec.Pod == nil || rec.Pod.Name != "early" || rec.Pod.SandboxID != pod.SandboxID || rec.Name != "app" {
		t.Errorf("created container's record: pid %d, name %q, pod %+v; want pid 0, app, pod early", rec.PID, rec.Name, rec.Pod)
	}
	if n := proxy.CallsFor("ContainerStatus", id); n != 0 {
		t.Errorf("%d ContainerStatus calls before the container started, want 0", n)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatalf("%v\n%s", err, rt.LogTail())
	}
	rec = listedRecord(t, d, id, "running")
	st, err := rt.Client().ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := parseInfo(t, id, st.GetInfo()).PID; rec.PID != want || rec.Partial {
		t.Errorf("started container's record: pid %d, partial %v; want the runtime's pid %d, complete", rec.PID, rec.Partial, want)
	}
	m, _ := d.metrics()
	if n, retries := proxy.CallsFor("ContainerStatus", id), m.Sum("cri_enricherd_lookup_retries_total"); n != 1 || retries != 0 {
		t.Errorf("%d ContainerStatus calls and %v retries for the container, want 1 and 0", n, retries)
	}
	for _, topic := range []string{"container_create", "task_start"} {
		if got := m.Sum("cri_enricherd_containerd_events_total", `topic="`+topic+`"`); got < 1 {
			t.Errorf("containerd_events_total{topic=%q} = %v, want >= 1", topic, got)
		}
	}
}

// listedRecord waits until the daemon lists id's record in state (with its
// pod) and returns it; listing reads the cache only.
func listedRecord(t *testing.T, d *daemon, id, state string) enrich.Record {
	t.Helper()
	var rec enrich.Record
	eventually(t, 30*time.Second, id[:12]+" listed "+state, func() error {
		recs, err := d.Records()
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.ID == id && r.State == state && r.Pod != nil && (state != "running" || r.PID != 0) {
				rec = r
				return nil
			}
		}
		return fmt.Errorf("not listed %s yet", state)
	})
	return rec
}
