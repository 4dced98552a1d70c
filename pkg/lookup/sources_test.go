package lookup

import (
	"fmt"
	"testing"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// sourceTarget is the engine as the cgroup source sees it: records are
// cached only where the test puts them, and submitted hints are kept.
type sourceTarget struct {
	Target
	cached map[string]enrich.Record
	hints  map[string]Hint
}

func (t *sourceTarget) Submit(id string, h Hint)  { t.hints[id] = h }
func (t *sourceTarget) CgroupSeen(string, uint64) {}
func (t *sourceTarget) CgroupGone(string)         {}
func (t *sourceTarget) PodKnown(uid string) bool {
	for _, r := range t.cached {
		if r.IsPodSandbox && r.Pod != nil && r.Pod.UID == uid {
			return true
		}
	}
	return false
}
func (t *sourceTarget) Cached(id string) (enrich.Record, bool) {
	r, ok := t.cached[id]
	return r, ok
}

type nopCgroupRecorder struct{}

func (nopCgroupRecorder) CgroupEvent(string) {}

func newSourceTarget() *sourceTarget {
	return &sourceTarget{cached: map[string]enrich.Record{}, hints: map[string]Hint{}}
}

func cgroupEvent(kind cgroup.Kind, uid, id string) cgroup.Event {
	return cgroup.Event{Kind: kind, Ref: cgroup.Ref{ContainerID: id, PodUID: uid}}
}

// Pods whose lookups all failed leave no record to recognise their sandbox
// by; their UIDs must still go with their last cgroup, or a node that runs
// pods for months grows the source's memory with every one.
func TestCgroupSourceForgetsPodsWhoseCgroupsAreAllGone(t *testing.T) {
	s := NewCgroupSource(newSourceTarget(), nopCgroupRecorder{}, func() bool { return false })
	for p := range 500 {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", p, p)
		ids := []string{fmt.Sprintf("%063xa", p), fmt.Sprintf("%063xb", p)}
		for _, id := range ids {
			s.Handle(cgroupEvent(cgroup.Added, uid, id))
		}
		for _, id := range ids {
			s.Handle(cgroupEvent(cgroup.Removed, uid, id))
		}
	}
	if n := len(s.pods); n != 0 {
		t.Errorf("%d pod UIDs still held after every cgroup of every pod is gone; want 0", n)
	}
}

// The first cgroup of an unknown pod is asked as a sandbox; the next ones
// of the same pod are not, and once every cgroup of the pod is gone, a new
// first cgroup (the pod's sandbox made again) is asked as a sandbox again.
func TestCgroupSourceNewPodHintFollowsLiveCgroups(t *testing.T) {
	tg := newSourceTarget()
	s := NewCgroupSource(tg, nopCgroupRecorder{}, func() bool { return false })
	uid := "0000000a-0000-4000-8000-00000000000a"
	s.Handle(cgroupEvent(cgroup.Added, uid, "sb1"))
	s.Handle(cgroupEvent(cgroup.Added, uid, "c1"))
	if !tg.hints["sb1"].NewPod || tg.hints["c1"].NewPod {
		t.Fatalf("NewPod hints: sandbox %v, container %v; want true, false", tg.hints["sb1"].NewPod, tg.hints["c1"].NewPod)
	}
	s.Handle(cgroupEvent(cgroup.Removed, uid, "c1"))
	if n := s.pods[uid]; n != 1 {
		t.Fatalf("live cgroups of the pod after one of two went: %d; want 1", n)
	}
	s.Handle(cgroupEvent(cgroup.Removed, uid, "sb1"))
	s.Handle(cgroupEvent(cgroup.Added, uid, "sb2"))
	if !tg.hints["sb2"].NewPod {
		t.Error("the first cgroup after every cgroup of the pod went was not hinted as a new pod's")
	}
}

// A cached sandbox's cgroup going ends the pod's first cgroup at once, even
// while a container's cgroup of the old sandbox is still there.
func TestCgroupSourceSandboxGoneResetsFirstCgroup(t *testing.T) {
	tg := newSourceTarget()
	s := NewCgroupSource(tg, nopCgroupRecorder{}, func() bool { return false })
	uid := "0000000b-0000-4000-8000-00000000000b"
	s.Handle(cgroupEvent(cgroup.Added, uid, "sb1"))
	s.Handle(cgroupEvent(cgroup.Added, uid, "c1"))
	tg.cached["sb1"] = enrich.Record{ID: "sb1", IsPodSandbox: true, Pod: &enrich.Pod{UID: uid}}
	s.Handle(cgroupEvent(cgroup.Removed, uid, "sb1"))
	if _, held := s.pods[uid]; held {
		t.Fatal("the pod's first cgroup is still held after its sandbox's cgroup went")
	}
	delete(tg.cached, "sb1")
	s.Handle(cgroupEvent(cgroup.Added, uid, "sb2"))
	if !tg.hints["sb2"].NewPod {
		t.Error("the re-made sandbox's cgroup was not hinted as a new pod's")
	}
	s.Handle(cgroupEvent(cgroup.Removed, uid, "c1"))
	s.Handle(cgroupEvent(cgroup.Removed, uid, "sb2"))
	if n := len(s.pods); n != 0 {
		t.Errorf("%d pod UIDs held after every cgroup went; want 0", n)
	}
}
