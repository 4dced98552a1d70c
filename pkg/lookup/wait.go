package lookup

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// Why an ID waits before its status is asked.
const (
	// reasonNotStarted: its cgroup exists but the runtime has not started
	// it yet (a container in state created, a sandbox not ready): its
	// status would lack the PID, or the network.
	reasonNotStarted = "not_started"
	// reasonNotRegistered: its cgroup exists but the runtime does not know
	// the ID yet (containerd registers a sandbox a moment after runc
	// creates its cgroup).
	reasonNotRegistered = "not_registered"
	// reasonNotStopped: the cgroup of a container is gone but the runtime
	// still reports it running: containerd deletes the task (and its
	// cgroup) before it records the exit.
	reasonNotStopped = "not_stopped"
	// reasonStopping: a stopped sandbox whose runtime still reports its
	// address: the network goes when the kubelet's StopPodSandbox tears it
	// down, and no event tells when, so its status is asked again later.
	reasonStopping = "stopping"
)

// maxStopChecks bounds how often a stopped sandbox's status is asked again
// for its network to go (after 1, 2, 4 ... 128 seconds).
const maxStopChecks = 8

// WaitOptions tune how the engine waits for the runtime to report an ID
// started. Zero values take the defaults.
type WaitOptions struct {
	First time.Duration // first List after the ID was seen (2ms)
	Max   time.Duration // longest gap between Lists (500ms)
	// GiveUp ends the wait for an ID the runtime never lists (30s): it is
	// then negatively cached. A sandbox listed not ready that long is
	// looked up as it is.
	GiveUp time.Duration
	// Announced says whether a source announces each start right now
	// (containerd's /tasks/start event nudges the ID): a created container
	// then waits for it, with one List per Max as the net for a lost event,
	// instead of Lists from First on. Nil means no source does.
	Announced func() bool
}

func (o *WaitOptions) setDefaults() {
	if o.First <= 0 {
		o.First = 2 * time.Millisecond
	}
	if o.Max < o.First {
		o.Max = 500 * time.Millisecond
	}
	if o.GiveUp <= 0 {
		o.GiveUp = 30 * time.Second
	}
}

// waiter holds the IDs whose status is not worth asking yet and asks the
// runtime, with one cheap List filtered by ID, when it is: a container once
// it left created, a sandbox once it is ready. Polling a List instead of
// the status call keeps lookups at one ContainerStatus per container and one
// PodSandboxStatus per pod, and the answer complete (PID, network).
type waiter struct {
	e    *Engine
	opts WaitOptions
	wake chan struct{}

	mu     sync.Mutex
	ids    map[string]*waiting
	checks map[string]int // stopped sandboxes: times asked again
}

type waiting struct {
	hint    Hint
	since   time.Time
	next    time.Time
	gap     time.Duration
	recheck bool // ask the status when due, without listing first
	// announced: a created container waiting, at the Max gap, for its
	// start to be announced (see followStart and resume).
	announced bool
}

func newWaiter(e *Engine, opts WaitOptions) *waiter {
	return &waiter{e: e, opts: opts, wake: make(chan struct{}, 1), ids: map[string]*waiting{}, checks: map[string]int{}}
}

// recheck asks a stopped sandbox's status again after a backoff, until its
// network is gone (see reasonStopping); settled ends it.
func (w *waiter) recheck(id string, settled bool) {
	now := w.e.opts.Now()
	w.mu.Lock()
	n := w.checks[id]
	if settled || n >= maxStopChecks {
		delete(w.checks, id)
		w.mu.Unlock()
		return
	}
	w.checks[id] = n + 1
	if _, ok := w.ids[id]; !ok {
		gap := time.Second << n
		w.ids[id] = &waiting{hint: Hint{Sandbox: true, Force: true}, since: now, next: now.Add(gap), gap: gap, recheck: true}
	}
	w.mu.Unlock()
	w.e.rec.Waited(reasonStopping)
	w.e.log.Debug("stopped sandbox still has its network; asking again", zap.String("id", id), zap.Int("check", n+1))
	w.poke()
}

// add starts waiting for id (unless it already waits) and counts why.
func (w *waiter) add(id string, hint Hint, reason string) {
	if w.follow(id, hint) {
		w.e.rec.Waited(reason)
		w.e.log.Debug("waiting for the runtime to list an id started", zap.String("id", id), zap.String("reason", reason))
	}
}

// follow starts waiting for id, unless it already waits, without counting
// it again: a created container whose partial record was just made goes on
// waiting for its start. It reports whether id was not waiting yet.
func (w *waiter) follow(id string, hint Hint) bool {
	now := w.e.opts.Now()
	w.mu.Lock()
	wt, waits := w.ids[id]
	switch {
	case waits && hint.Nudge && !wt.recheck && !wt.hint.Gone:
		// The runtime just moved: list it now, and back off from there.
		wt.next, wt.gap, wt.announced = now, w.opts.First/2, false
		wt.hint.Sandbox, wt.hint.NewPod = wt.hint.Sandbox || hint.Sandbox, wt.hint.NewPod || hint.NewPod
		wt.hint.Started = wt.hint.Started || hint.Started
	case waits:
		w.mu.Unlock()
		return false
	default:
		// The first List goes at once: a container's record is made from
		// it, before its first process runs.
		hint.Nudge = false
		w.ids[id] = &waiting{hint: hint, since: now, next: now, gap: w.opts.First / 2}
	}
	w.mu.Unlock()
	w.poke()
	return !waits
}

// followStart waits for a created container to start, once its partial
// record is made. Where a source announces starts, it waits for the
// announcement's nudge, listing once per Max meanwhile; unless the start was
// announced already (started), then it is followed closely.
func (w *waiter) followStart(id string, started bool) {
	if started || w.opts.Announced == nil || !w.opts.Announced() {
		w.follow(id, Hint{Cgroup: true})
		return
	}
	now := w.e.opts.Now()
	w.mu.Lock()
	if _, ok := w.ids[id]; !ok {
		w.ids[id] = &waiting{hint: Hint{Cgroup: true}, since: now, next: now.Add(w.opts.Max), gap: w.opts.Max, announced: true}
	}
	w.mu.Unlock()
	w.poke()
}

// resume lists every ID waiting for an announcement at once, and backs off
// from First from there: no source announces starts any more.
func (w *waiter) resume() {
	now := w.e.opts.Now()
	w.mu.Lock()
	for _, wt := range w.ids {
		if wt.announced {
			wt.next, wt.gap, wt.announced = now, w.opts.First/2, false
		}
	}
	w.mu.Unlock()
	w.poke()
}

func (w *waiter) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take stops waiting for id and says whether its start was announced.
func (w *waiter) take(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.ids[id]
	delete(w.ids, id)
	return ok && wt.hint.Started
}

func (w *waiter) remove(id string) {
	w.mu.Lock()
	delete(w.ids, id)
	w.mu.Unlock()
}

func (w *waiter) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.ids[id]
	return ok
}

func (w *waiter) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

// run polls the due IDs until ctx ends.
func (w *waiter) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := w.due()
		l := w.lister(len(due) > 1)
		for _, id := range due {
			w.poll(ctx, id, l)
		}
		if len(due) > 0 {
			continue // polling took time: look again before sleeping
		}
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(w.e.opts.Now()), 0)
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// due returns the IDs to poll now and when the next one is due.
func (w *waiter) due() ([]string, time.Time) {
	now := w.e.opts.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var due []string
	var next time.Time
	for id, wt := range w.ids {
		if !wt.next.After(now) {
			due = append(due, id)
			continue
		}
		if next.IsZero() || wt.next.Before(next) {
			next = wt.next
		}
	}
	return due, next
}

// poll lists id and submits its lookup when the runtime reports it started,
// or reschedules it.
func (w *waiter) poll(ctx context.Context, id string, l *lister) {
	w.mu.Lock()
	wt, ok := w.ids[id]
	var hint Hint
	if ok {
		hint = wt.hint
	}
	w.mu.Unlock()
	if !ok {
		return
	}
	if wt.recheck {
		w.submit(id, hint)
		return
	}
	verdict, isSandbox, listed := l.state(ctx, id, hint)
	now := w.e.opts.Now()
	if hint.Gone {
		w.pollGone(id, wt, verdict, isSandbox, now)
		return
	}
	switch {
	case (verdict == verdictStarted || verdict == verdictStopped) && w.knows(id, verdict):
		// Another lookup got there first (a container's pod, an event).
		w.remove(id)
	case verdict == verdictStarted || verdict == verdictStopped:
		// Forced past a record of an earlier state; unforced, a sandbox's
		// lookup shares the PodSandboxStatus a container's lookup may be
		// making for its pod right now. The runtime lists it: a negative
		// entry from before it was registered no longer holds.
		w.e.remember(id, true)
		w.submit(id, Hint{Sandbox: isSandbox, Force: w.cached(id), Exists: true})
	case verdict == verdictListed && listed != nil && !w.cached(id):
		// Created, not started: a partial record now, from the listing.
		w.submit(id, Hint{Exists: true, Cgroup: true, created: &createdStatus{status: enrich.Listed(listed), sandboxID: listed.GetPodSandboxId()}})
	case now.Sub(wt.since) < w.opts.GiveUp:
		w.reschedule(id, now, verdict == verdictUnlisted)
	case verdict == verdictListed:
		// Listed but never started (a sandbox that never became ready):
		// its state as it is now is the answer.
		w.submit(id, Hint{Sandbox: isSandbox, Force: true, Exists: true})
	default:
		w.remove(id)
		w.e.remember(id, false)
		w.e.log.Debug("gave up waiting for the runtime to list a cgroup's id", zap.String("id", id))
	}
}

// pollGone asks for the final state of an ID whose cgroup went once the
// runtime lists it stopped or no more.
func (w *waiter) pollGone(id string, wt *waiting, verdict listVerdict, isSandbox bool, now time.Time) {
	switch {
	case verdict == verdictStopped || verdict == verdictUnlisted || now.Sub(wt.since) >= w.opts.GiveUp:
		w.submit(id, Hint{Sandbox: isSandbox, Gone: true, Force: true})
	default:
		w.reschedule(id, now, false)
	}
}

func (w *waiter) submit(id string, hint Hint) { w.e.submitWaited(id, hint) }

// reschedule doubles id's gap up to Max. An ID no List has named keeps
// doubling, up to an eighth of GiveUp: a runtime registers a new sandbox
// within moments, and a cgroup it never lists (another runtime's, a leaked
// one) should not cost two Lists a second until the wait gives up.
func (w *waiter) reschedule(id string, now time.Time, unlisted bool) {
	limit := w.opts.Max
	if unlisted {
		limit = max(limit, w.opts.GiveUp/8)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt, ok := w.ids[id]; ok {
		wt.gap = min(2*wt.gap, limit)
		wt.next = now.Add(wt.gap)
	}
}

// listVerdict is what the lists say about an ID.
type listVerdict int

const (
	verdictFailed   listVerdict = iota // a List failed: ask again later
	verdictUnlisted                    // neither list has it
	verdictListed                      // listed, not started yet
	verdictStarted                     // a container running, a sandbox ready
	verdictStopped                     // a container exited, a sandbox not ready after it was ready
)

// lister answers what the Lists say about the IDs due in one round. With
// one ID due it lists that ID (a filtered List); with several, it lists
// each kind once, unfiltered, and answers every ID from that: containerd
// builds every container's entry to answer a filtered List anyway, so one
// List for a burst of IDs costs the runtime about what one filtered List
// does, and no ID's List waits behind the others'.
type lister struct {
	w          *waiter
	all        bool
	containers listing[*runtimeapi.Container]
	sandboxes  listing[*runtimeapi.PodSandbox]
}

// listing is one kind's answer in a round: the unfiltered List, made once.
type listing[T interface{ GetId() string }] struct {
	byID map[string]T
	err  error
	done bool
}

// get returns id's listed item (nil when the runtime lists none): from a
// List filtered by id or, with all, from the round's unfiltered List.
// list lists what id names, everything for "".
func (s *listing[T]) get(ctx context.Context, id string, all bool, list func(context.Context, string) ([]T, error)) (T, error) {
	var none T
	if !all {
		items, err := list(ctx, id)
		if err != nil || len(items) == 0 {
			return none, err
		}
		return items[0], nil
	}
	if !s.done {
		s.done = true
		var items []T
		items, s.err = list(ctx, "")
		s.byID = make(map[string]T, len(items))
		for _, it := range items {
			s.byID[it.GetId()] = it
		}
	}
	return s.byID[id], s.err
}

func (w *waiter) lister(all bool) *lister { return &lister{w: w, all: all} }

// state lists id as a sandbox and as a container, the likelier first; a
// listed container comes back too.
func (l *lister) state(ctx context.Context, id string, hint Hint) (listVerdict, bool, *runtimeapi.Container) {
	if hint.Sandbox || hint.NewPod {
		if v := l.sandboxState(ctx, id, hint.Gone); v != verdictUnlisted || hint.Sandbox {
			return v, true, nil
		}
		v, c := l.containerState(ctx, id)
		return v, false, c
	}
	if v, c := l.containerState(ctx, id); v != verdictUnlisted {
		return v, false, c
	}
	if hint.Gone {
		return verdictUnlisted, false, nil
	}
	return l.sandboxState(ctx, id, false), true, nil
}

// knows says whether id's record is complete and already in the state the
// lists report: asking its status would tell nothing new.
func (w *waiter) knows(id string, verdict listVerdict) bool {
	rec, ok := w.e.Cached(id)
	if !ok || rec.Partial || rec.DeletedAt != nil {
		return false
	}
	if verdict == verdictStarted {
		return rec.State == "ready" || rec.State == "running" && rec.PID != 0
	}
	return rec.State == "exited" || rec.State == "notready"
}

// cached says whether id has a record already (a partial one counts).
func (w *waiter) cached(id string) bool {
	_, ok := w.e.Cached(id)
	return ok
}

// sandboxState reads a sandbox's listed state. Not ready means "not set up
// yet" to a wait for the start and "stopped" to a wait for the end.
func (l *lister) sandboxState(ctx context.Context, id string, gone bool) listVerdict {
	item, err := l.sandbox(ctx, id)
	switch {
	case err != nil:
		return verdictFailed
	case item == nil:
		return verdictUnlisted
	case item.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY:
		return verdictStarted
	case gone:
		return verdictStopped
	}
	return verdictListed
}

func (l *lister) containerState(ctx context.Context, id string) (listVerdict, *runtimeapi.Container) {
	item, err := l.container(ctx, id)
	switch {
	case err != nil:
		return verdictFailed, nil
	case item == nil:
		return verdictUnlisted, nil
	}
	switch item.GetState() {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return verdictListed, item
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return verdictStopped, item
	}
	return verdictStarted, item
}

// sandbox returns id's listed sandbox, nil when the runtime lists none.
func (l *lister) sandbox(ctx context.Context, id string) (*runtimeapi.PodSandbox, error) {
	return l.sandboxes.get(ctx, id, l.all, func(ctx context.Context, id string) ([]*runtimeapi.PodSandbox, error) {
		if err := l.w.e.limit.Wait(ctx); err != nil {
			return nil, err
		}
		return l.w.e.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: id})
	})
}

// container returns id's listed container, nil when the runtime lists none.
func (l *lister) container(ctx context.Context, id string) (*runtimeapi.Container, error) {
	return l.containers.get(ctx, id, l.all, func(ctx context.Context, id string) ([]*runtimeapi.Container, error) {
		if err := l.w.e.limit.Wait(ctx); err != nil {
			return nil, err
		}
		return l.w.e.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{Id: id})
	})
}
