package lookup

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// criNamespace is the containerd namespace of everything the CRI plugin
// creates; containers of other namespaces (docker's moby, ctr's default)
// are not the kubelet's.
const criNamespace = "k8s.io"

// The containerd topics the follower subscribes to, and the label each is
// counted under.
var containerdTopics = map[string]string{
	topicContainerCreate: "container_create",
	topicTaskStart:       "task_start",
}

const (
	topicContainerCreate = "/containers/create"
	topicTaskStart       = "/tasks/start"
)

// ContainerdStream is an open subscription to containerd's events.
type ContainerdStream interface {
	// Recv returns the next event's namespace (empty when the envelope
	// names none), topic and container ID; an error wrapping
	// criclient.ErrMalformedEvent (see IsMalformed) leaves the stream
	// usable.
	Recv() (namespace, topic, id string, err error)
}

// ContainerdRuntime is containerd's own event service on the CRI socket.
type ContainerdRuntime interface {
	ContainerdEvents(ctx context.Context, filters []string) (ContainerdStream, error)
	ObserveContainerdStreamEnd(err error, took time.Duration)
}

// ContainerdRecorder counts containerd's events by topic label ("malformed"
// for an unreadable one, "skipped" for one about an ID that is not a CRI
// container) and is told when they feed lookups (EventSource "containerd")
// and when no more ("cgroup").
type ContainerdRecorder interface {
	ContainerdEvent(topic string)
	EventSource(mode string)
}

// ContainerdTarget is the engine as the follower feeds it.
type ContainerdTarget interface {
	Submit(id string, hint Hint)
	// ResumeWaits is told when the stream ends: the IDs waiting for an
	// announced start are listed again at once.
	ResumeWaits()
}

var _ ContainerdTarget = (*Engine)(nil)

// ContainerdEvents follows containerd's own events where the runtime has no
// CRI event stream (containerd 1.6 and 1.7). They carry only an ID, but
// they tell when to ask: a container is listed the moment the runtime
// created it, so its record is there before its cgroup and its first
// process, and listed again the moment its task started, so its status
// (PID included) is asked once, without polling for it. Everything else
// still comes from Lists and status calls, and the cgroup watcher stays the
// source that never misses: a lost event costs only time.
type ContainerdEvents struct {
	engine    ContainerdTarget
	rt        ContainerdRuntime
	rec       ContainerdRecorder
	log       *zap.Logger
	malformed func(error) bool

	mu     sync.Mutex
	active bool
	stream int // the current stream's number: a late timer of an earlier one changes nothing
}

// Active says whether a stream is open and known to work (it delivered an
// event or stayed open for quickEnd): the runtime announces starts now (see
// WaitOptions.Announced).
func (f *ContainerdEvents) Active() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active
}

// NewContainerdEvents creates the follower; malformed says whether a Recv
// error is an unreadable event rather than the end of the stream.
func NewContainerdEvents(e ContainerdTarget, rt ContainerdRuntime, rec ContainerdRecorder, log *zap.Logger, malformed func(error) bool) *ContainerdEvents {
	return &ContainerdEvents{engine: e, rt: rt, rec: rec, log: log, malformed: malformed}
}

// Run follows the events until ctx ends, reopening a broken stream with
// capped backoff. A runtime without containerd's event service (CRI-O)
// answers Unimplemented: Run then returns nil.
func (f *ContainerdEvents) Run(ctx context.Context) error {
	delay := time.Second
	for {
		start := time.Now()
		got, err := f.follow(ctx)
		lived := time.Since(start)
		f.rt.ObserveContainerdStreamEnd(err, lived)
		if f.ended() {
			f.engine.ResumeWaits()
		}
		if ctx.Err() != nil {
			return nil
		}
		if codeOf(err) == codes.Unimplemented {
			f.log.Info("the runtime serves no containerd events; cgroups alone tell when to ask")
			return nil
		}
		if got > 0 || lived > quickEnd {
			delay = time.Second
		}
		f.log.Warn("containerd event stream ended; reopening", zap.Error(err), zap.Duration("after", delay))
		if sleepCtx(ctx, delay) != nil {
			return nil
		}
		delay = min(2*delay, streamBackoff)
	}
}

// filters selects the CRI namespace's events of containerdTopics; separate
// filters are alternatives.
func filters() []string {
	fs := make([]string, 0, len(containerdTopics))
	for topic := range containerdTopics {
		fs = append(fs, `namespace=="`+criNamespace+`",topic=="`+topic+`"`)
	}
	return fs
}

// follow reads one stream until it breaks and says how many events it got.
func (f *ContainerdEvents) follow(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := f.rt.ContainerdEvents(ctx, filters())
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	stream := f.stream
	f.mu.Unlock()
	// containerd answers nothing before the first event: a stream that
	// stays open that long is taken as working (a runtime without the
	// service refuses it at once).
	open := time.AfterFunc(quickEnd, func() { f.working(stream) })
	defer open.Stop()
	for n := 0; ; n++ {
		ns, topic, cid, err := s.Recv()
		if err == nil || f.malformed(err) {
			f.working(stream)
		}
		switch {
		case err != nil && f.malformed(err):
			f.rec.ContainerdEvent("malformed")
			f.log.Warn("skipping a containerd event", zap.Error(err))
		case err != nil:
			if n == 0 {
				f.log.Debug("containerd event stream ended before its first event", zap.Error(err))
			}
			return n, err
		default:
			f.handle(ns, topic, cid)
		}
	}
}

// working marks the stream as one that announces starts.
func (f *ContainerdEvents) working(stream int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active || stream != f.stream {
		return
	}
	f.active = true
	f.rec.EventSource("containerd")
	f.log.Info("following containerd's own events: creates and task starts tell when to ask")
}

// ended marks the stream gone and says whether it was working.
func (f *ContainerdEvents) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stream++
	was := f.active
	f.active = false
	if was {
		f.rec.EventSource("cgroup")
	}
	return was
}

// handle lists the ID at once: on a create the runtime has just made it
// (a partial record, before its cgroup exists), on a task start it is
// about to report it running (its status, PID included). An event of
// another namespace (docker's moby, ctr's default: the subscription's
// filter should have kept it out) or about an ID that is not a CRI one (a
// container someone made in the namespace by hand) is skipped: either
// would cost Lists until the wait for it gave up.
func (f *ContainerdEvents) handle(ns, topic, cid string) {
	label, ok := containerdTopics[topic]
	if !ok || !id.IsFull(cid) || ns != "" && ns != criNamespace {
		f.rec.ContainerdEvent("skipped")
		f.log.Debug("skipping a containerd event", zap.String("namespace", ns), zap.String("topic", topic), zap.String("id", cid))
		return
	}
	f.rec.ContainerdEvent(label)
	f.engine.Submit(cid, Hint{Exists: true, Cgroup: true, Nudge: true, Started: topic == topicTaskStart})
}
