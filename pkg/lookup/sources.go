package lookup

import (
	"sync"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// CgroupRecorder counts cgroup events.
type CgroupRecorder interface {
	CgroupEvent(kind string)
}

// Target is the surface the sources (the cgroup watcher's glue and the
// event follower) hand what they see to: the engine. They never touch the
// cache or the engine's fields; data flows source -> engine -> cache.
type Target interface {
	// Submit asks for a lookup of id (see Engine.Submit).
	Submit(id string, hint Hint)
	// Update changes id's record from what a source saw, atomically.
	Update(id string, fn func(enrich.Record) enrich.Record) bool
	// MarkDeleted records that the runtime deleted id.
	MarkDeleted(id string)
	// InvalidateSandbox makes the next use of a sandbox's record ask again.
	InvalidateSandbox(id string)
	// CgroupSeen and CgroupGone report a container cgroup's ID and its
	// directory's removal.
	CgroupSeen(id string, cgroupID uint64)
	CgroupGone(id string)
	// Cached returns id's cached record, deleted or not.
	Cached(id string) (enrich.Record, bool)
	// PodKnown says whether a sandbox of the pod is cached.
	PodKnown(podUID string) bool
}

var _ Target = (*Engine)(nil)

// CgroupSource turns the cgroup watcher's events into lookups.
type CgroupSource struct {
	engine       Target
	rec          CgroupRecorder
	eventsActive func() bool
	eventGrace   time.Duration

	mu sync.Mutex
	// pods counts, by pod UID, the cgroups seen and not gone yet: a UID
	// leaves with its last cgroup, even when no record of the pod was ever
	// cached (its lookups failed, the cache evicted it, a pod with no
	// sandbox cgroup), so pods that come and go cannot grow it.
	pods map[string]int
}

// NewCgroupSource creates the glue; eventsActive says whether the CRI event
// stream currently reports stops and deletions (then a vanishing cgroup
// needs no question to the runtime).
func NewCgroupSource(e Target, rec CgroupRecorder, eventsActive func() bool) *CgroupSource {
	return &CgroupSource{engine: e, rec: rec, eventsActive: eventsActive, eventGrace: 2 * time.Second, pods: make(map[string]int)}
}

// Handle applies one cgroup event.
func (s *CgroupSource) Handle(ev cgroup.Event) {
	s.rec.CgroupEvent(ev.Kind.String())
	id := ev.Ref.ContainerID
	switch ev.Kind {
	case cgroup.Added:
		s.engine.CgroupSeen(id, ev.CgroupID)
		hint := Hint{Exists: true, Cgroup: true, NewPod: s.firstOfPod(ev.Ref.PodUID)}
		if s.eventsActive() {
			// The event stream reports every container and sandbox,
			// usually before its cgroup exists; the cgroup is the safety
			// net for a lost event, so it waits for the event first and
			// never races it into a NotFound.
			time.AfterFunc(s.eventGrace, func() { s.engine.Submit(id, hint) })
			return
		}
		s.engine.Submit(id, hint)
	case cgroup.Removed:
		s.engine.CgroupGone(id)
		s.forget(ev.Ref.PodUID, id)
		if s.eventsActive() {
			return
		}
		// Without events, a gone cgroup is the sign a container exited
		// or a sandbox stopped; ask for the final state even when the
		// record is not cached yet (a short-lived container can end
		// while its first lookup runs, or before it).
		if rec, cached := s.engine.Cached(id); !cached || rec.DeletedAt == nil {
			s.engine.Submit(id, Hint{Gone: true})
		}
	}
}

// firstOfPod says whether this is the first cgroup seen in the pod: in a
// pod nobody knows yet, the first cgroup is almost always the sandbox's, so
// PodSandboxStatus is asked first and ContainerStatus is spared a NotFound.
func (s *CgroupSource) firstOfPod(podUID string) bool {
	if podUID == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.pods[podUID]
	s.pods[podUID] = n + 1
	return n == 0 && !s.engine.PodKnown(podUID)
}

func (s *CgroupSource) forget(podUID, id string) {
	if podUID == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, seen := s.pods[podUID]
	if !seen {
		return
	}
	// A gone sandbox ends the pod's first cgroup too: the sandbox that
	// replaces it is asked as a sandbox first, even while containers of
	// the old one are still being removed.
	if rec, ok := s.engine.Cached(id); n <= 1 || ok && rec.IsPodSandbox && rec.Pod != nil && rec.Pod.UID == podUID {
		delete(s.pods, podUID)
		return
	}
	s.pods[podUID] = n - 1
}
