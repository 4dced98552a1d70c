package fakecri

import (
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventBuffer is how many events a slow stream may fall behind before the
// fake drops events for it (and counts them, see DroppedEvents), as a real
// runtime's bounded event queue would.
const eventBuffer = 4096

type subscriber struct {
	ch chan *runtimeapi.ContainerEventResponse
}

// publishLocked sends the event about id to every open stream. A container
// event carries the container's status; a sandbox event has the sandbox's ID
// as container_id, as containerd sends them.
func (r *Runtime) publishLocked(id string, kind runtimeapi.ContainerEventType) {
	if len(r.subs) == 0 {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: kind, CreatedAt: time.Now().UnixNano()}
	if c := r.containers[id]; c != nil {
		ev.ContainersStatuses = []*runtimeapi.ContainerStatus{r.containerStatusLocked(c)}
		if sb := r.sandboxes[c.sandboxID]; sb != nil {
			ev.PodSandboxStatus = r.sandboxStatusLocked(sb)
		}
	} else if sb := r.sandboxes[id]; sb != nil {
		ev.PodSandboxStatus = r.sandboxStatusLocked(sb)
	}
	for s := range r.subs {
		select {
		case s.ch <- ev:
		default:
			r.dropped++
		}
	}
}

func (r *Runtime) subscribe() *subscriber {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &subscriber{ch: make(chan *runtimeapi.ContainerEventResponse, eventBuffer)}
	r.subs[s] = struct{}{}
	return s
}

func (r *Runtime) unsubscribe(s *subscriber) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, s)
}

// Subscribers returns the number of open event streams: a test waits for
// its follower to be subscribed before it mutates the runtime.
func (r *Runtime) Subscribers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// CloseEventStreams ends every open event stream with EOF after the events
// already queued for it, as a restarting runtime would.
func (r *Runtime) CloseEventStreams() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.subs {
		close(s.ch)
		delete(r.subs, s)
	}
}

// DroppedEvents returns how many events were dropped because a stream fell
// more than eventBuffer events behind.
func (r *Runtime) DroppedEvents() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}
