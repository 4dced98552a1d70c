package lookup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
)

// A waiting ID is listed again the moment a source says the runtime moved
// (a containerd event, its cgroup), not at the end of its backoff.
func TestWait_ANudgeListsAWaitingIDAtOnce(t *testing.T) {
	rt := newFakeRuntime()
	e, c, _ := newTestEngine(t, rt, Options{Wait: WaitOptions{First: time.Minute, Max: time.Hour, GiveUp: time.Hour}})
	id := hexID('c', 100)
	e.Submit(id, Hint{Exists: true, Cgroup: true})
	waitFor(t, func() bool { return rt.Calls("ListPodSandbox") == 1 })
	rt.addPod(1, 1)
	e.Submit(id, Hint{Exists: true, Cgroup: true}) // no nudge: it keeps its turn, a minute away
	time.Sleep(50 * time.Millisecond)
	if got := rt.Calls("ListContainers"); got != 1 {
		t.Fatalf("ListContainers = %d after a plain resubmit, want 1: only a nudge lists early", got)
	}
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true})
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && !r.Partial && r.PID != 0 })
	if got := rt.Calls("ContainerStatus"); got != 1 {
		t.Errorf("ContainerStatus = %d, want 1", got)
	}
}

// Where a source announces starts, a created container's partial record is
// not followed by Lists from First on: it waits for the start's nudge.
func TestWait_WhereStartsAreAnnouncedACreatedContainerWaitsForTheNudge(t *testing.T) {
	rt, e, c, id := announcedStarts(t, func() bool { return true })
	before := rt.Calls("ContainerStatus")                       // the on-demand lookup tried the sandbox as a container
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true}) // its create event
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.Partial && r.State == "created" })
	lists := rt.Calls("ListContainers")
	time.Sleep(50 * time.Millisecond)
	if got := rt.Calls("ListContainers"); got != lists {
		t.Fatalf("ListContainers went from %d to %d while the start was announced but not there yet", lists, got)
	}
	rt.setState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true}) // its task-start event
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && !r.Partial && r.PID != 0 })
	if got := rt.Calls("ContainerStatus") - before; got != 1 {
		t.Errorf("ContainerStatus for the container = %d, want 1", got)
	}
}

// The start announced while the List that finds the container created is
// on its way must not be lost: the container is then followed closely, not
// left to wait Max (a minute here) for an announcement that came already.
func TestWait_AStartAnnouncedWhileItsListRunsIsNotLost(t *testing.T) {
	rt, e, c, id := announcedStarts(t, func() bool { return true })
	listing, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	rt.mu.Lock()
	rt.fail = func(rpc, fid string) error {
		if rpc == "ListContainers" && fid == id && held.CompareAndSwap(false, true) {
			close(listing)
			<-release
		}
		return nil
	}
	rt.mu.Unlock()
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true}) // its create event
	<-listing
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true, Started: true}) // its start, while the List runs
	close(release)
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.State == "created" })
	rt.setState(id, runtimeapi.ContainerState_CONTAINER_RUNNING) // the CRI plugin records the start
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.PID != 0 && !r.Partial })
}

// A start heard before (or without) the create, its List still showing the
// container created, is followed closely too.
func TestWait_AStartHeardFirstIsFollowedClosely(t *testing.T) {
	rt, e, c, id := announcedStarts(t, func() bool { return true })
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true, Started: true})
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.State == "created" })
	rt.setState(id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.PID != 0 && !r.Partial })
}

// When the source that announced starts goes away, the containers waiting
// for an announcement are listed again at once, not a Max later.
func TestWait_ResumeWaitsListsWhatWaitedForAnAnnouncement(t *testing.T) {
	var announced atomic.Bool
	announced.Store(true)
	rt, e, c, id := announcedStarts(t, announced.Load)
	e.Submit(id, Hint{Exists: true, Cgroup: true, Nudge: true})
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.State == "created" })
	rt.setState(id, runtimeapi.ContainerState_CONTAINER_RUNNING) // its start event is lost with the stream
	announced.Store(false)
	e.ResumeWaits()
	waitFor(t, func() bool { r, err := c.Get(id); return err == nil && r.PID != 0 && !r.Partial })
}

// announcedStarts runs an engine whose source announces starts as
// announced says, with a minute's gap while it waits for one, over a
// runtime with one known pod and its container id still created.
func announcedStarts(t *testing.T, announced func() bool) (*fakeRuntime, *Engine, *cache.Cache, string) {
	t.Helper()
	rt := newFakeRuntime()
	sb, ctrs := rt.addPod(1, 1)
	rt.setState(ctrs[0], runtimeapi.ContainerState_CONTAINER_CREATED)
	e, c, _ := newTestEngine(t, rt, Options{Wait: WaitOptions{First: time.Millisecond, Max: time.Minute, GiveUp: time.Hour, Announced: announced}})
	if _, err := lookupNow(t, e, sb); err != nil {
		t.Fatal(err)
	}
	return rt, e, c, ctrs[0]
}

// submits records what a source hands the engine.
type submits struct {
	mu      sync.Mutex
	hints   map[string][]Hint
	resumed int
}

func (s *submits) ResumeWaits() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumed++
}

func (s *submits) Submit(id string, hint Hint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hints[id] = append(s.hints[id], hint)
}

func (s *submits) of(id string) []Hint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hints[id]
}

// scriptedEvents answers each subscription with the next script: its
// events, then its final error.
type scriptedEvents struct {
	mu      sync.Mutex
	scripts []eventScript
	filters [][]string
	ends    []codes.Code
}

type eventScript struct {
	events []scriptedEvent
	end    error
}

type scriptedEvent struct {
	ns, topic, id string
	err           error
}

type scriptedStream struct{ s eventScript }

func (s *scriptedStream) Recv() (string, string, string, error) {
	if len(s.s.events) == 0 {
		return "", "", "", s.s.end
	}
	ev := s.s.events[0]
	s.s.events = s.s.events[1:]
	return ev.ns, ev.topic, ev.id, ev.err
}

func (r *scriptedEvents) ContainerdEvents(_ context.Context, filters []string) (ContainerdStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filters = append(r.filters, filters)
	if len(r.scripts) == 0 {
		return nil, status.Error(codes.Unimplemented, "unknown service")
	}
	s := r.scripts[0]
	r.scripts = r.scripts[1:]
	return &scriptedStream{s: s}, nil
}

func (r *scriptedEvents) ObserveContainerdStreamEnd(err error, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ends = append(r.ends, statusCode(err))
}

type topicCounts struct {
	mu      sync.Mutex
	n       map[string]int
	sources []string
}

func (c *topicCounts) EventSource(mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources = append(c.sources, mode)
}

func (c *topicCounts) ContainerdEvent(topic string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[topic]++
}

var errMalformedForTest = errors.New("malformed")

func TestContainerdEvents_NudgesEachCreatedAndStartedIDSkipsMalformedOnesAndReopens(t *testing.T) {
	a, b, moby := hexID('c', 1), hexID('a', 2), hexID('d', 3)
	rt := &scriptedEvents{scripts: []eventScript{
		{events: []scriptedEvent{
			{ns: "k8s.io", topic: "/containers/create", id: a},
			{err: fmt.Errorf("%w: no topic", errMalformedForTest)},
			{ns: "k8s.io", topic: "/tasks/start", id: a},
			{ns: "k8s.io", topic: "/tasks/start", id: "not-a-cri-id"},
			{ns: "moby", topic: "/tasks/start", id: moby}, // past a filter the runtime ignored
		}, end: status.Error(codes.Unavailable, "containerd restarted")},
		{events: []scriptedEvent{{ns: "", topic: "/tasks/start", id: b}}, end: status.Error(codes.Unimplemented, "gone")}, // an envelope naming no namespace is taken
	}}
	target := &submits{hints: map[string][]Hint{}}
	counts := &topicCounts{n: map[string]int{}}
	f := NewContainerdEvents(target, rt, counts, zap.NewNop(), func(err error) bool { return errors.Is(err, errMalformedForTest) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Run(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want nil once the runtime answers Unimplemented", err, ctx.Err())
	}
	create, start := Hint{Exists: true, Cgroup: true, Nudge: true}, Hint{Exists: true, Cgroup: true, Nudge: true, Started: true}
	if got := target.of(a); len(got) != 2 || got[0] != create || got[1] != start {
		t.Errorf("hints for the created and started container = %+v, want %+v then %+v", got, create, start)
	}
	if got := target.of(b); len(got) != 1 {
		t.Errorf("hints after the stream was reopened, for an event naming no namespace = %+v, want one", got)
	}
	if got := target.of("not-a-cri-id"); len(got) != 0 {
		t.Errorf("a non-CRI ID was submitted: %+v", got)
	}
	if got := target.of(moby); len(got) != 0 {
		t.Errorf("a container of docker's namespace was submitted: %+v", got)
	}
	if counts.n["container_create"] != 1 || counts.n["task_start"] != 2 || counts.n["malformed"] != 1 || counts.n["skipped"] != 2 {
		t.Errorf("counted %v, want container_create 1, task_start 2, malformed 1, skipped 2", counts.n)
	}
	if want := "containerd cgroup containerd cgroup"; strings.Join(counts.sources, " ") != want || target.resumed != 2 {
		t.Errorf("event sources %v and %d resumed waits, want %s and 2 (each stream worked, then ended)", counts.sources, target.resumed, want)
	}
	if len(rt.filters) != 2 || len(rt.ends) != 2 || rt.ends[0] != codes.Unavailable {
		t.Errorf("subscriptions %d (ends %v), want 2, the first ended Unavailable", len(rt.filters), rt.ends)
	}
	for _, fl := range rt.filters[0] {
		if fl != `namespace=="k8s.io",topic=="/containers/create"` && fl != `namespace=="k8s.io",topic=="/tasks/start"` {
			t.Errorf("filter %q: want the k8s.io namespace's create and task-start topics only", fl)
		}
	}
}
