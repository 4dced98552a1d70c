package lookup

import (
	"sync"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
)

// CgroupRecorder counts cgroup events.
type CgroupRecorder interface {
	CgroupEvent(kind string)
}

// CgroupSource turns the cgroup watcher's events into lookups.
type CgroupSource struct {
	engine       *Engine
	rec          CgroupRecorder
	eventsActive func() bool
	eventGrace   time.Duration

	mu   sync.Mutex
	pods map[string]struct{} // pod UIDs whose first cgroup was seen
}

// NewCgroupSource creates the glue; eventsActive says whether the CRI event
// stream currently reports stops and deletions (then a vanishing cgroup
// needs no question to the runtime).
func NewCgroupSource(e *Engine, rec CgroupRecorder, eventsActive func() bool) *CgroupSource {
	return &CgroupSource{engine: e, rec: rec, eventsActive: eventsActive, eventGrace: 2 * time.Second, pods: make(map[string]struct{})}
}

// Handle applies one cgroup event.
func (s *CgroupSource) Handle(ev cgroup.Event) {
	s.rec.CgroupEvent(ev.Kind.String())
	id := ev.Ref.ContainerID
	switch ev.Kind {
	case cgroup.Added:
		s.engine.store.CgroupSeen(id, ev.CgroupID)
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
		s.engine.store.CgroupGone(id)
		s.forget(ev.Ref.PodUID, id)
		if s.eventsActive() {
			return
		}
		// Without events, a gone cgroup is the sign a container exited
		// or a sandbox stopped; ask for the final state even when the
		// record is not cached yet (a short-lived container can end
		// while its first lookup runs, or before it).
		if rec, err := s.engine.store.Get(id); err != nil || (rec.ID == id && rec.DeletedAt == nil) {
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
	if _, seen := s.pods[podUID]; seen {
		return false
	}
	s.pods[podUID] = struct{}{}
	return !s.engine.podKnown(podUID)
}

func (s *CgroupSource) forget(podUID, id string) {
	if podUID == "" {
		return
	}
	if rec, ok := s.engine.store.GetSandbox(id); ok && rec.Pod != nil && rec.Pod.UID == podUID {
		s.mu.Lock()
		delete(s.pods, podUID)
		s.mu.Unlock()
	}
}
