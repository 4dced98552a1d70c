package cache

import (
	"sync"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestCache_UpdateLosesNoConcurrentUpdate(t *testing.T) {
	c := New()
	id := testID(1)
	c.Put(plainRecord(id))
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				c.Update(id, func(r enrich.Record) enrich.Record { r.Attempt++; return r })
			}
		}()
	}
	wg.Wait()
	if got, _ := c.Get(id); got.Attempt != writers*each {
		t.Errorf("Attempt = %d after %d increments, want no update lost", got.Attempt, writers*each)
	}
}

func TestCache_NoWriteMovesAStateBackwards(t *testing.T) {
	c := New()
	id := testID(1)
	rec := plainRecord(id)
	rec.PID = 42
	c.Put(rec)
	c.Update(id, func(r enrich.Record) enrich.Record { r.State = "exited"; return r })
	stale := plainRecord(id) // a lookup answered running before the container exited
	stale.PID = 42
	c.Put(stale)
	c.Update(id, func(r enrich.Record) enrich.Record { r.State = "created"; return r })
	got, _ := c.Get(id)
	if got.State != "exited" || got.PID != 0 {
		t.Errorf("record = state %s pid %d, want exited with pid 0 (the runtime's answer once it exited)", got.State, got.PID)
	}
}

func TestCache_ContainersFollowTheirSandboxsPod(t *testing.T) {
	c := New()
	sb := sandboxRecord(testID(1), "shop", "web-0")
	sb.Pod.State, sb.Pod.IP = "ready", "10.0.0.7"
	c.Put(sb)
	a, b := containerRecord(testID(2), sb, "app"), containerRecord(testID(3), sb, "sidecar")
	a.PodSource, b.PodSource = enrich.PodSourceSandboxStatus, enrich.PodSourceSandboxStatus
	c.Put(a)
	c.Put(b)
	var changes []Change
	unsubscribe := c.Subscribe(func(ch Change) { changes = append(changes, ch) })
	defer unsubscribe()

	stopped := sandboxRecord(testID(1), "shop", "web-0")
	stopped.State, stopped.Pod.State = "notready", "notready"
	c.Put(stopped)
	for _, id := range []string{a.ID, b.ID} {
		got, _ := c.Get(id)
		if got.Pod.State != "notready" || got.Pod.IP != "" {
			t.Errorf("container %s pod = state %q ip %q, want its stopped sandbox's notready and no IP", id[:12], got.Pod.State, got.Pod.IP)
		}
	}
	if len(changes) != 3 {
		t.Errorf("changes = %d, want 3: the sandbox and each container", len(changes))
	}
}

func TestCache_AContainerCachedBeforeItsSandboxTakesItsPodLater(t *testing.T) {
	c := New()
	sb := sandboxRecord(testID(1), "shop", "web-0")
	labelOnly := containerRecord(testID(2), sb, "app")
	labelOnly.Pod = &enrich.Pod{SandboxID: sb.ID, Name: "web-0", Namespace: "shop"}
	labelOnly.PodSource = enrich.PodSourceContainerLabels
	c.Put(labelOnly)
	sb.Pod.IP = "10.0.0.8"
	c.Put(sb)
	got, _ := c.Get(labelOnly.ID)
	if got.PodSource != enrich.PodSourceSandboxStatus || got.Pod.IP != "10.0.0.8" {
		t.Errorf("container = source %s ip %q, want the sandbox's pod", got.PodSource, got.Pod.IP)
	}
}

func TestCache_SandboxByIPAnswersOnlyALiveReadySandbox(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now), WithGracePeriod(time.Minute))
	older := sandboxRecord(testID(1), "shop", "old")
	older.Pod.IP, older.Pod.AdditionalIPs = "10.0.0.7", []string{"fd00::7"}
	older.CreatedAt = new(clock.Now())
	c.Put(older)
	if got, ok := c.SandboxByIP("fd00::7"); !ok || got.ID != older.ID {
		t.Fatalf("SandboxByIP(additional IP) = %v, %v; want the sandbox", got.ID, ok)
	}
	newer := sandboxRecord(testID(2), "shop", "new")
	newer.Pod.IP = "10.0.0.7"
	newer.CreatedAt = new(clock.Now().Add(time.Second))
	c.Put(newer)
	if got, _ := c.SandboxByIP("10.0.0.7"); got.ID != newer.ID {
		t.Errorf("two sandboxes claim 10.0.0.7: got %s, want the newer one", got.ID[:12])
	}
	c.Update(newer.ID, func(r enrich.Record) enrich.Record { r.State = "notready"; return r })
	if got, _ := c.SandboxByIP("10.0.0.7"); got.ID != older.ID {
		t.Errorf("after the newer stopped: got %q, want the other ready claimant", got.ID)
	}
	c.MarkDeleted(older.ID, clock.Now())
	if got, ok := c.SandboxByIP("10.0.0.7"); ok {
		t.Errorf("SandboxByIP after every claimant stopped or was deleted = %s, want none", got.ID[:12])
	}
	if _, ok := c.SandboxByIP("fd00::7"); ok {
		t.Errorf("a deleted sandbox still answers for its additional IP")
	}
}

func TestCache_ByCgroupIDAnswersTheRecordWhoseCgroupHasTheIDNow(t *testing.T) {
	clock := newFakeClock()
	c := New(WithClock(clock.Now), WithGracePeriod(time.Minute))
	old, next := testID(1), testID(2)
	c.CgroupSeen(old, 4242) // the cgroup appears before the lookup ends
	c.Put(plainRecord(old))
	got, ok := c.ByCgroupID(4242)
	if !ok || got.ID != old || got.CgroupID != 4242 {
		t.Fatalf("ByCgroupID(4242) = %s %d, %v; want the record, carrying its cgroup id", got.ID, got.CgroupID, ok)
	}
	stale := plainRecord(old) // a later runtime answer knows nothing of cgroup ids
	stale.Name = "renamed"
	c.Put(stale)
	if got, _ := c.Get(old); got.CgroupID != 4242 {
		t.Errorf("cgroup id after a runtime answer = %d, want 4242 kept", got.CgroupID)
	}

	c.CgroupGone(old)
	c.MarkDeleted(old, clock.Now())
	if got, ok := c.ByCgroupID(4242); ok {
		t.Fatalf("a removed cgroup's id still answers %s", got.ID[:12])
	}
	if got, _ := c.Get(old); got.CgroupID != 4242 {
		t.Errorf("deleted record cgroup id = %d, want it kept", got.CgroupID)
	}
	// The kernel gives the inode to a new directory.
	c.CgroupSeen(next, 4242)
	c.Put(plainRecord(next))
	c.Update(old, func(r enrich.Record) enrich.Record { r.Name = "late-update"; return r })
	if got, ok := c.ByCgroupID(4242); !ok || got.ID != next {
		t.Errorf("ByCgroupID(4242) after re-use = %q, %v; want the new directory's record, never the deleted one", got.ID, ok)
	}
}

func TestCache_ALateClaimOnAReusedIDWinsOverAnEarlierOneNotYetGone(t *testing.T) {
	c := New()
	a, b := testID(1), testID(2)
	c.Put(plainRecord(a))
	c.CgroupSeen(a, 7)
	c.Put(plainRecord(b))
	c.CgroupSeen(b, 7) // a's removal was not seen yet (an inotify overflow)
	c.Update(a, func(r enrich.Record) enrich.Record { r.Name = "touched"; return r })
	if got, _ := c.ByCgroupID(7); got.ID != b {
		t.Errorf("ByCgroupID(7) = %s, want the later claim %s", got.ID[:12], b[:12])
	}
	c.CgroupGone(a)
	if got, ok := c.ByCgroupID(7); !ok || got.ID != b {
		t.Errorf("the older claim's removal took the id from the newer: %q %v", got.ID, ok)
	}
}
