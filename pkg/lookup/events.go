package lookup

import (
	"context"
	"errors"
	"io"
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

// Events follows the runtime's container events, so a container is looked
// up on CREATED, before its first process runs.
type Events struct {
	engine *Engine
	rt     EventRuntime
	rec    StreamRecorder
	log    *zap.Logger
	resync func()
	active atomic.Bool
}

// NewEvents creates an event follower; resync is called after a broken
// stream is reopened, since events may have been missed meanwhile.
func NewEvents(e *Engine, rt EventRuntime, rec StreamRecorder, log *zap.Logger, resync func()) *Events {
	return &Events{engine: e, rt: rt, rec: rec, log: log, resync: resync}
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
		ev.setActive(false)
		ev.rt.ObserveStreamEnd(err, time.Since(start))
		if ctx.Err() != nil {
			return nil
		}
		if codeOf(err) == codes.Unimplemented {
			ev.noEvents("runtime does not serve GetContainerEvents")
			return nil
		}
		if got == 0 && time.Since(start) < quickEnd {
			if quick++; quick >= quickEndsLimit {
				ev.noEvents("runtime ends the event stream at once (events disabled)")
				return nil
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

func (ev *Events) noEvents(why string) {
	ev.log.Info("no CRI event stream; the cgroup watcher alone feeds lookups", zap.String("reason", why))
	ev.rec.EventSource("cgroup")
}

func (ev *Events) setActive(on bool) {
	ev.active.Store(on)
	ev.rec.EventStreamState(on)
}

// follow reads one stream until it breaks and says how many events it got.
func (ev *Events) follow(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ev.rt.ContainerEvents(ctx)
	if err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.EOF
			}
			return n, err
		}
		if n == 0 {
			ev.setActive(true)
			ev.rec.EventSource("events")
		}
		ev.handle(msg)
	}
}

func codeOf(err error) codes.Code { return statusCode(err) }

// handle applies one event. Only CREATED (and a STARTED for an unknown ID)
// asks the runtime; the rest update the record from the event itself.
func (ev *Events) handle(msg *runtimeapi.ContainerEventResponse) {
	id := msg.GetContainerId()
	sb := msg.GetPodSandboxStatus()
	isSandbox := sb != nil && sb.GetId() == id
	kind := msg.GetContainerEventType()
	ev.rec.RuntimeEvent(eventName(kind))
	e := ev.engine
	switch kind {
	case runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT:
		e.Submit(id, Hint{Sandbox: isSandbox, Exists: true})
	case runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT:
		if !e.Update(id, ev.started(msg, isSandbox)) {
			e.Submit(id, Hint{Sandbox: isSandbox, Exists: true})
		}
	case runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT:
		e.Update(id, ev.stopped(msg, isSandbox))
	case runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT:
		e.MarkDeleted(id)
	}
}

func (ev *Events) started(msg *runtimeapi.ContainerEventResponse, isSandbox bool) func(enrich.Record) enrich.Record {
	if isSandbox {
		return withSandboxState(runtimeapi.PodSandboxState_SANDBOX_READY)
	}
	st := statusOf(msg)
	return func(r enrich.Record) enrich.Record {
		r.State = "running"
		if t := nsTime(st.GetStartedAt()); t != nil {
			r.StartedAt = t
		}
		if r.PID == 0 && ev.engine.opts.PIDOfCgroup != nil && r.CgroupPath != "" {
			r.PID = ev.engine.opts.PIDOfCgroup(r.CgroupPath)
		}
		return r
	}
}

func (ev *Events) stopped(msg *runtimeapi.ContainerEventResponse, isSandbox bool) func(enrich.Record) enrich.Record {
	if isSandbox {
		return withSandboxState(runtimeapi.PodSandboxState_SANDBOX_NOTREADY)
	}
	st := statusOf(msg)
	return func(r enrich.Record) enrich.Record {
		r.State = "exited"
		if t := nsTime(st.GetFinishedAt()); t != nil {
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

func nsTime(ns int64) *time.Time {
	if ns <= 0 {
		return nil
	}
	t := time.Unix(0, ns).UTC()
	return &t
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
