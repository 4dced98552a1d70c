package lookup

import (
	"context"
	"sync/atomic"
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
	"/containers/create": "container_create",
	"/tasks/start":       "task_start",
}

// ContainerdStream is an open subscription to containerd's events.
type ContainerdStream interface {
	// Recv returns the next event's topic and container ID; an error
	// wrapping criclient.ErrMalformedEvent (see IsMalformed) leaves the
	// stream usable.
	Recv() (topic, id string, err error)
}

// ContainerdRuntime is containerd's own event service on the CRI socket.
type ContainerdRuntime interface {
	ContainerdEvents(ctx context.Context, filters []string) (ContainerdStream, error)
	ObserveContainerdStreamEnd(err error, took time.Duration)
}

// ContainerdRecorder counts containerd's events by topic label (and
// "malformed").
type ContainerdRecorder interface {
	ContainerdEvent(topic string)
}

// ContainerdEvents follows containerd's own events where the runtime has no
// CRI event stream (containerd 1.6 and 1.7). They carry only an ID, but
// they tell when to ask: a container is listed the moment the runtime
// created it, so its record is there before its cgroup and its first
// process, and listed again the moment its task started, so its status
// (PID included) is asked once, without polling for it. Everything else
// still comes from Lists and status calls, and the cgroup watcher stays the
// source that never misses: a lost event costs only time.
type ContainerdEvents struct {
	engine    Target
	rt        ContainerdRuntime
	rec       ContainerdRecorder
	log       *zap.Logger
	malformed func(error) bool
	active    atomic.Bool
}

// Active says whether a stream is open and has delivered an event: the
// runtime announces starts now (see WaitOptions.Announced).
func (f *ContainerdEvents) Active() bool { return f.active.Load() }

// NewContainerdEvents creates the follower; malformed says whether a Recv
// error is an unreadable event rather than the end of the stream.
func NewContainerdEvents(e Target, rt ContainerdRuntime, rec ContainerdRecorder, log *zap.Logger, malformed func(error) bool) *ContainerdEvents {
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
		f.rt.ObserveContainerdStreamEnd(err, time.Since(start))
		if ctx.Err() != nil {
			return nil
		}
		if codeOf(err) == codes.Unimplemented {
			f.log.Info("the runtime serves no containerd events; cgroups alone tell when to ask")
			return nil
		}
		if got > 0 {
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
	defer f.active.Store(false)
	for n := 0; ; n++ {
		topic, cid, err := s.Recv()
		if err == nil || f.malformed(err) {
			// containerd answers only with the first event: until then
			// the stream may yet turn out Unimplemented.
			f.active.Store(true)
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
			f.handle(topic, cid)
		}
	}
}

// handle lists the ID at once: on a create the runtime has just made it
// (a partial record, before its cgroup exists), on a task start it is
// about to report it running (its status, PID included). An ID that is not
// a CRI one (a container someone made in the namespace by hand) is skipped.
func (f *ContainerdEvents) handle(topic, cid string) {
	label, ok := containerdTopics[topic]
	if !ok || !id.IsFull(cid) {
		f.rec.ContainerdEvent("malformed")
		f.log.Debug("skipping a containerd event", zap.String("topic", topic), zap.String("id", cid))
		return
	}
	f.rec.ContainerdEvent(label)
	f.engine.Submit(cid, Hint{Exists: true, Cgroup: true, Nudge: true})
}
