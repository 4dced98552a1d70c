package lookup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// EventRuntime is the runtime's CRI event stream.
type EventRuntime interface {
	ContainerEvents(ctx context.Context) (runtimeapi.RuntimeService_GetContainerEventsClient, error)
	ObserveStreamEnd(err error, took time.Duration)
}

// StreamRecorder is told how the event stream fares.
type StreamRecorder interface {
	RuntimeEvent(eventType string)
	EventStreamState(connected bool)
	EventStreamReconnect()
	EventSource(mode string)
}

// quickEnd is how soon after opening a stream must end to count as "the
// runtime has no events": CRI-O with enable_pod_events=false closes the
// stream at once with EOF instead of answering Unimplemented.
const (
	quickEnd       = time.Second
	quickEndsLimit = 3
	streamBackoff  = 30 * time.Second
)

// ErrNoEvents means the runtime serves no CRI event stream although
// runtime.events is "on".
var ErrNoEvents = errors.New("the runtime serves no CRI event stream")

// Events follows the runtime's container events, so a container is looked
// up on CREATED, before its first process runs.
type Events struct {
	engine   Target
	rt       EventRuntime
	rec      StreamRecorder
	log      *zap.Logger
	resync   func()
	required bool
	active   atomic.Bool
}

// NewEvents creates an event follower; resync is called after a broken
// stream is reopened, since events may have been missed meanwhile. With
// required, a runtime without events is an error (runtime.events: on)
// instead of a fallback to the cgroup watcher.
func NewEvents(e Target, rt EventRuntime, rec StreamRecorder, log *zap.Logger, resync func(), required bool) *Events {
	return &Events{engine: e, rt: rt, rec: rec, log: log, resync: resync, required: required}
}

// Active says whether the stream currently feeds the engine.
func (ev *Events) Active() bool { return ev.active.Load() }

// Run follows the stream until ctx ends or the runtime turns out to have
// none, in which case it returns nil and the cgroup watcher carries on alone.
func (ev *Events) Run(ctx context.Context) error {
	delay, quick := time.Second, 0
	for opened := 0; ; opened++ {
		start := time.Now()
		got, err := ev.follow(ctx)
		ev.active.Store(false)
		ev.rec.EventStreamState(false)
		ev.rt.ObserveStreamEnd(err, time.Since(start))
		if ctx.Err() != nil {
			return nil
		}
		if codeOf(err) == codes.Unimplemented {
			return ev.noEvents("runtime does not serve GetContainerEvents")
		}
		if got == 0 && time.Since(start) < quickEnd {
			if quick++; quick >= quickEndsLimit {
				return ev.noEvents("runtime ends the event stream at once (events disabled)")
			}
		} else {
			quick, delay = 0, time.Second
		}
		ev.log.Warn("event stream ended; reopening", zap.Error(err), zap.Duration("after", delay))
		ev.rec.EventStreamReconnect()
		if sleepCtx(ctx, delay) != nil {
			return nil
		}
		delay = min(2*delay, streamBackoff)
		ev.resync()
	}
}

func (ev *Events) noEvents(why string) error {
	if ev.required {
		return fmt.Errorf("runtime.events is on, but %s: %w", why, ErrNoEvents)
	}
	ev.log.Info("no CRI event stream; the cgroup watcher alone feeds lookups", zap.String("reason", why))
	ev.rec.EventSource("cgroup")
	return nil
}

// follow reads one stream until it breaks and says how many events it got.
// The cgroup watcher counts on the stream from the moment it is open; the
// metrics call it connected once it has stayed open for quickEnd (the
// runtime sends nothing on a quiet node, and a refusing runtime ends the
// stream sooner than that) or an event arrived.
func (ev *Events) follow(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ev.rt.ContainerEvents(ctx)
	if err != nil {
		return 0, err
	}
	ev.active.Store(true)
	var once sync.Once
	connected := func() {
		once.Do(func() {
			ev.rec.EventStreamState(true)
			ev.rec.EventSource("events")
		})
	}
	open := time.AfterFunc(quickEnd, connected)
	defer open.Stop()
	for n := 0; ; n++ {
		msg, err := stream.Recv()
		if err != nil {
			open.Stop()
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			return n, err
		}
		connected()
		ev.handle(msg)
	}
}

func codeOf(err error) codes.Code { return statusCode(err) }

// handle applies one event. A container's record is made on CREATED,
// before its first process runs, from the status the event carries (a
// partial record, no status call); STARTED asks ContainerStatus for the
// complete record, PID included. A sandbox is looked up once it is ready: its
// network is set up by then, and a sandbox stored not ready could never
// become ready (states only move forward). Stops and deletions change the
// record from the event itself; a stopped sandbox is asked again, since its
// network (IP) is gone and its containers' pod follows it.
func (ev *Events) handle(msg *runtimeapi.ContainerEventResponse) {
	id := msg.GetContainerId()
	sb := msg.GetPodSandboxStatus()
	isSandbox := sb != nil && sb.GetId() == id
	kind := msg.GetContainerEventType()
	ev.rec.RuntimeEvent(eventName(kind))
	e := ev.engine
	switch {
	case kind == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
		e.MarkDeleted(id)
	case isSandbox:
		ev.handleSandbox(id, kind)
	case kind == runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT:
		hint := Hint{Exists: true}
		if st := statusOf(msg); st != nil {
			hint.created = &createdStatus{status: st, sandboxID: sb.GetId()}
		}
		e.Submit(id, hint)
	case kind == runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT:
		if !e.Update(id, started(statusOf(msg))) {
			e.Submit(id, Hint{Exists: true})
		}
	case kind == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT:
		e.Update(id, stopped(statusOf(msg)))
	}
}

func (ev *Events) handleSandbox(id string, kind runtimeapi.ContainerEventType) {
	e := ev.engine
	ev.log.Debug("sandbox event", zap.String("id", id), zap.String("type", eventName(kind)))
	switch kind {
	case runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT:
		e.Submit(id, Hint{Sandbox: true, Exists: true})
	case runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT:
		e.Update(id, withSandboxState(runtimeapi.PodSandboxState_SANDBOX_NOTREADY))
		e.InvalidateSandbox(id)
		e.Submit(id, Hint{Sandbox: true, Force: true})
	}
}

func started(st *runtimeapi.ContainerStatus) func(enrich.Record) enrich.Record {
	return func(r enrich.Record) enrich.Record {
		r.State = "running"
		if t := enrich.UnixNano(st.GetStartedAt()); t != nil {
			r.StartedAt = t
		}
		return r
	}
}

func stopped(st *runtimeapi.ContainerStatus) func(enrich.Record) enrich.Record {
	return func(r enrich.Record) enrich.Record {
		r.State = "exited"
		r.PID = 0
		if t := enrich.UnixNano(st.GetFinishedAt()); t != nil {
			r.FinishedAt = t
		}
		return r
	}
}

func statusOf(msg *runtimeapi.ContainerEventResponse) *runtimeapi.ContainerStatus {
	for _, st := range msg.GetContainersStatuses() {
		if st.GetId() == msg.GetContainerId() {
			return st
		}
	}
	return nil
}

func eventName(t runtimeapi.ContainerEventType) string {
	switch t {
	case runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT:
		return "created"
	case runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT:
		return "started"
	case runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT:
		return "stopped"
	case runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
		return "deleted"
	}
	return "unknown"
}
