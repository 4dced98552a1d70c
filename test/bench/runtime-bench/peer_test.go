package main

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary be the reacting peer's process too, as
// runtime-bench is: reactingPeer runs its own executable again.
func TestMain(m *testing.M) {
	runPeerIfAsked()
	os.Exit(m.Run())
}

// The peer times every container of the pods made while it watches, and
// no sandbox (its ContainerStatus answers NotFound), from a process of its
// own against the fake runtime in CRI-O's shape.
func TestReactingPeer_TimesEachContainerOfThePodsItWatches(t *testing.T) {
	o := options{perPod: 2, crioSandbox: time.Millisecond, crioStart: time.Millisecond, settleTime: 200 * time.Millisecond}
	f, err := startFakeCRIO(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	both, cs, err := reactingPeer(ctx, f, o, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if both.N != 6 || cs.N != 6 {
		t.Fatalf("timed %d containers (%d first answers), want the 6 of 3 pods of 2", both.N, cs.N)
	}
	if cs.P50 <= 0 || cs.Max > both.Max || cs.P50 > both.P50 {
		t.Errorf("ContainerStatus answered at p50 %.2f / max %.2f ms, both at %.2f / %.2f: the first answer must come first", cs.P50, cs.Max, both.P50, both.Max)
	}
	// Every container cgroup is asked about, the 3 sandboxes' too (their
	// ContainerStatus answers NotFound: not timed, no PodSandboxStatus).
	if cs, pss := f.rt.Calls("ContainerStatus"), f.rt.Calls("PodSandboxStatus"); cs != 9 || pss != 6 {
		t.Errorf("the peer asked ContainerStatus %d and PodSandboxStatus %d times, want 9 (6 containers, 3 sandboxes) and 6", cs, pss)
	}
}
