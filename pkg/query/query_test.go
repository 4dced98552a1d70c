package query

import (
	"context"
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

const (
	idA = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
	idB = "aaaaaaaaaaaa2222222222222222222222222222222222222222222222222222"
	idS = "cccccccccccc3333333333333333333333333333333333333333333333333333"
)

func testQuery() *Query {
	c := cache.New()
	pod := &enrich.Pod{SandboxID: idS, Name: "web-0", Namespace: "shop", State: "ready", IP: "10.0.0.7"}
	c.Put(enrich.Record{ID: idA, ShortID: idA[:12], Name: "app", Pod: pod})
	c.Put(enrich.Record{ID: idB, ShortID: idB[:12], Name: "side", Pod: pod})
	c.Put(enrich.Record{ID: idS, ShortID: idS[:12], Name: "web-0", IsPodSandbox: true, State: "ready", Pod: pod})
	return New(c, nil, nil, zap.NewNop(), 0)
}

func TestQuery_RefusesEachQuestionWithItsCode(t *testing.T) {
	q, ctx := testQuery(), context.Background()
	tests := []struct {
		name string
		ask  func() error
		want Code // 0: answered
	}{
		{"full id", func() error { _, err := q.Container(ctx, idA); return err }, 0},
		{"unique prefix", func() error { _, err := q.Container(ctx, idS[:12]); return err }, 0},
		{"ambiguous prefix", func() error { _, err := q.Container(ctx, idA[:12]); return err }, CodeAmbiguous},
		{"unknown prefix", func() error { _, err := q.Container(ctx, "bbbbbbbbbbbb"); return err }, CodeNotFound},
		{"unknown full id without a resolver", func() error { _, err := q.Container(ctx, idA[:63]+"0"); return err }, CodeNotFound},
		{"malformed id", func() error { _, err := q.Container(ctx, "AAAAAAAAAAAA"); return err }, CodeInvalid},
		{"pid 0", func() error { _, err := q.ContainerByPID(ctx, 0); return err }, CodeInvalid},
		{"pid over the kernel's limit", func() error { _, err := q.ContainerByPID(ctx, MaxPID+1); return err }, CodeInvalid},
		{"relative cgroup path", func() error { _, err := q.ContainerByCgroup(ctx, "kubepods"); return err }, CodeInvalid},
		{"cgroup path with ..", func() error { _, err := q.ContainerByCgroup(ctx, "/kubepods/../x"); return err }, CodeInvalid},
		{"cgroup of no container", func() error { _, err := q.ContainerByCgroup(ctx, "/system.slice"); return err }, CodeNotFound},
		{"cgroup id 0", func() error { _, err := q.ContainerByCgroupID(0); return err }, CodeInvalid},
		{"unknown cgroup id", func() error { _, err := q.ContainerByCgroupID(7); return err }, CodeNotFound},
		{"pod ip", func() error { _, err := q.PodByIP("10.0.0.7"); return err }, 0},
		{"malformed ip", func() error { _, err := q.PodByIP("10.0.0"); return err }, CodeInvalid},
		{"ip of no pod", func() error { _, err := q.PodByIP("10.0.0.8"); return err }, CodeNotFound},
		{"ambiguous sandbox prefix", func() error { _, err := q.Containers(cache.Filter{SandboxID: idA[:12]}); return err }, CodeAmbiguous},
		{"selector with !=", func() error { _, err := ListOptions{Selector: "app!=web"}.Filter(); return err }, CodeInvalid},
		{"malformed sandbox id", func() error { _, err := ListOptions{SandboxID: "xyz"}.Filter(); return err }, CodeInvalid},
		{"pid text", func() error { _, err := ParsePID("12a"); return err }, CodeInvalid},
		{"cgroup id text", func() error { _, err := ParseCgroupID("-1"); return err }, CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ask()
			if got := CodeOf(err); (tt.want == 0 && err != nil) || (tt.want != 0 && got != tt.want) {
				t.Errorf("error %v (code %d), want code %d", err, got, tt.want)
			}
		})
	}
}

func TestWatchError_GivesEachHubErrorItsCode(t *testing.T) {
	tests := []struct {
		err  error
		want Code
	}{
		{&watch.TooSlowError{}, CodeTooMany},
		{fmt.Errorf("open: %w", watch.ErrTooManyWatchers), CodeTooMany},
		{watch.ErrRevisionTooOld, CodeRevisionGone},
		{watch.ErrRevisionUnknown, CodeInvalid},
		{watch.ErrClosed, CodeUnavailable},
		{fmt.Errorf("disk on fire"), CodeInternal},
	}
	for _, tt := range tests {
		if got := CodeOf(WatchError(tt.err)); got != tt.want {
			t.Errorf("WatchError(%v) code %d, want %d", tt.err, got, tt.want)
		}
	}
	if err := WatchError(context.Canceled); err != context.Canceled {
		t.Errorf("WatchError(context.Canceled) = %v, want it as is", err)
	}
}

// A pod whose sandbox the kubelet re-created is one pod: its current
// sandbox, and the containers of both sandboxes.
func TestQuery_PodsIsOneItemPerPodAcrossItsSandboxes(t *testing.T) {
	const (
		oldSB = "dddddddddddd4444444444444444444444444444444444444444444444444444"
		newSB = "eeeeeeeeeeee5555555555555555555555555555555555555555555555555555"
		oldC  = "ffffffffffff6666666666666666666666666666666666666666666666666666"
		newC  = "ffffffffffff7777777777777777777777777777777777777777777777777777"
	)
	c := cache.New()
	old := &enrich.Pod{SandboxID: oldSB, UID: "u1", Name: "web-0", Namespace: "shop", State: "notready", Attempt: 0}
	cur := &enrich.Pod{SandboxID: newSB, UID: "u1", Name: "web-0", Namespace: "shop", State: "ready", Attempt: 1, IP: "10.0.0.9"}
	c.Put(enrich.Record{ID: newSB, ShortID: newSB[:12], IsPodSandbox: true, State: "ready", Pod: cur})
	c.Put(enrich.Record{ID: oldSB, ShortID: oldSB[:12], IsPodSandbox: true, State: "notready", Pod: old})
	c.Put(enrich.Record{ID: oldC, ShortID: oldC[:12], Name: "app", State: "exited", Pod: old})
	c.Put(enrich.Record{ID: newC, ShortID: newC[:12], Name: "app", Attempt: 1, State: "running", Pod: cur})
	q := New(c, nil, nil, zap.NewNop(), 0)
	pods := q.Pods(cache.Filter{})
	if len(pods) != 1 {
		t.Fatalf("pods = %d items, want 1 for one pod UID", len(pods))
	}
	p := pods[0]
	if p.Sandbox == nil || p.Sandbox.ID != newSB || p.Pod.SandboxID != newSB {
		t.Errorf("sandbox = %+v, pod.sandbox_id = %s; want the current sandbox %s", p.Sandbox, p.Pod.SandboxID, newSB[:12])
	}
	if len(p.Containers) != 2 {
		t.Errorf("containers = %d, want both sandboxes' 2", len(p.Containers))
	}
}
