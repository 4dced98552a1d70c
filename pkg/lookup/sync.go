package lookup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// SyncReport says what one bootstrap or relist found and repaired.
type SyncReport struct {
	Runtime, RuntimeVersion string
	Sandboxes, Containers   int // what the runtime listed
	Added, Deleted          int // lookups started, records marked deleted
}

// Sync makes the cache equal to the runtime: two List calls for the whole
// node, a lookup for every ID the cache lacks (sandboxes first, so their
// containers find them cached), state updates from the lists, and deletion
// of what the runtime no longer has. It waits for the lookups it started and
// is bounded by the sync deadline, so a runtime that accepts connections but
// never answers cannot hang it.
func (e *Engine) Sync(ctx context.Context) (SyncReport, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.SyncDeadline)
	defer cancel()
	start := e.opts.Now()
	// Version confirms that the socket is a CRI runtime and names it for
	// the records; a restarted runtime may be another version.
	v, err := e.rt.Version(ctx)
	if err != nil {
		return SyncReport{}, e.syncFailed(fmt.Errorf("sync: %w", err))
	}
	sandboxes, err := e.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return SyncReport{}, e.syncFailed(fmt.Errorf("sync: %w", err))
	}
	containers, err := e.rt.ListContainers(ctx, nil)
	if err != nil {
		return SyncReport{}, e.syncFailed(fmt.Errorf("sync: %w", err))
	}
	rep := SyncReport{Runtime: v.GetRuntimeName(), RuntimeVersion: v.GetRuntimeVersion(), Sandboxes: len(sandboxes), Containers: len(containers)}
	live, queued := e.queueListed(sandboxes, containers, start)
	rep.Added = len(queued)
	rep.Deleted = e.deleteMissing(live, start)
	if err := e.Wait(ctx, queued); err != nil {
		return rep, e.syncFailed(fmt.Errorf("sync: waiting for %d lookups: %w", len(queued), err))
	}
	e.rec.RelistDone(true, rep.Added, rep.Deleted)
	e.rec.Synced(e.opts.Now())
	return rep, nil
}

func (e *Engine) syncFailed(err error) error {
	e.rec.LookupFailed(StageList, reasonOf(err))
	e.rec.RelistDone(false, 0, 0)
	return err
}

// queueListed queues lookups for listed IDs the cache lacks and applies the
// lists' states to the ones it has. A sandbox listed not ready and young is
// most likely still being set up: it waits until it is ready (see waiter).
func (e *Engine) queueListed(sandboxes []*runtimeapi.PodSandbox, containers []*runtimeapi.Container, listedAt time.Time) (map[string]struct{}, []string) {
	live := make(map[string]struct{}, len(sandboxes)+len(containers))
	var queued []string
	for _, sb := range sandboxes {
		live[sb.GetId()] = struct{}{}
		if settingUp(sb, listedAt, e.opts.Wait.GiveUp) {
			e.mu.Lock()
			if !e.skipLocked(sb.GetId()) {
				e.waits.add(sb.GetId(), Hint{Sandbox: true, Exists: true}, reasonNotStarted)
			}
			e.mu.Unlock()
			continue
		}
		if e.queue1(sb.GetId(), Hint{Sandbox: true}) {
			queued = append(queued, sb.GetId())
			continue
		}
		e.refreshSandbox(sb)
	}
	for _, c := range containers {
		live[c.GetId()] = struct{}{}
		if e.queue1(c.GetId(), Hint{}) {
			queued = append(queued, c.GetId())
			continue
		}
		e.Update(c.GetId(), withState(enrich.ContainerState(c.GetState())))
	}
	return live, queued
}

// settingUp says whether a listed sandbox is not ready yet but young enough
// to become ready.
func settingUp(sb *runtimeapi.PodSandbox, now time.Time, within time.Duration) bool {
	return sb.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY &&
		now.Sub(time.Unix(0, sb.GetCreatedAt())) < within
}

// refreshSandbox applies a listed sandbox's state to its cached record. A
// sandbox whose state changed has changed its network too (a stopped pod
// has no IP), so it is asked again, and its containers' pod follows.
func (e *Engine) refreshSandbox(sb *runtimeapi.PodSandbox) {
	state := enrich.SandboxState(sb.GetState())
	rec, ok := e.store.GetSandbox(sb.GetId())
	if !ok || rec.State == state {
		return
	}
	e.Update(sb.GetId(), withSandboxState(sb.GetState()))
	e.InvalidateSandbox(sb.GetId())
	e.Submit(sb.GetId(), Hint{Sandbox: true, Force: true})
}

func (e *Engine) queue1(id string, hint Hint) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.submitLocked(id, hint) != nil
}

// deleteMissing marks deleted the cached records the runtime no longer
// lists. A record created after the lists were taken is left alone: it is
// new, not gone.
func (e *Engine) deleteMissing(live map[string]struct{}, listedAt time.Time) int {
	n := 0
	for _, rec := range e.store.List(cache.Filter{}) {
		if _, ok := live[rec.ID]; ok {
			continue
		}
		if rec.CreatedAt != nil && !rec.CreatedAt.Before(listedAt) {
			continue
		}
		e.MarkDeleted(rec.ID)
		n++
	}
	return n
}

func withState(state string) func(enrich.Record) enrich.Record {
	return func(r enrich.Record) enrich.Record {
		r.State = state
		return r
	}
}

func withSandboxState(s runtimeapi.PodSandboxState) func(enrich.Record) enrich.Record {
	state := enrich.SandboxState(s)
	return func(r enrich.Record) enrich.Record {
		r.State = state
		if r.Pod != nil {
			p := *r.Pod
			p.State = state
			r.Pod = &p
		}
		return r
	}
}

// Syncer keeps the engine synced: the bootstrap (retried with capped
// backoff until it succeeds), the periodic relist, and a relist whenever the
// runtime comes back after an outage. It owns readiness.
type Syncer struct {
	engine   *Engine
	log      *zap.Logger
	interval time.Duration
	backoff  time.Duration
	ready    func(bool)

	runtimeUp atomic.Bool
	synced    atomic.Bool
	kick      chan struct{}
	first     chan struct{}
	firstOnce sync.Once
}

// NewSyncer creates a syncer relisting every interval; ready is told each
// change of readiness (metrics, logs).
func NewSyncer(e *Engine, log *zap.Logger, interval time.Duration, ready func(bool)) *Syncer {
	s := &Syncer{engine: e, log: log, interval: interval, backoff: 30 * time.Second, ready: ready, kick: make(chan struct{}, 1), first: make(chan struct{})}
	s.runtimeUp.Store(true)
	return s
}

// FirstSync is closed when the first full sync has succeeded. The cgroup
// watcher starts after it: its initial walk then finds every existing
// container cached, instead of racing the bootstrap with guesses.
func (s *Syncer) FirstSync() <-chan struct{} { return s.first }

// Ready says whether the first full sync is done and the runtime is reachable.
func (s *Syncer) Ready() bool { return s.synced.Load() && s.runtimeUp.Load() }

// RuntimeUp is told when the runtime's connection comes and goes. Coming
// back triggers a relist: anything may have changed during the outage.
func (s *Syncer) RuntimeUp(up bool) {
	was := s.runtimeUp.Swap(up)
	if up == was {
		return
	}
	if !up {
		s.synced.Store(false)
		s.log.Warn("runtime unreachable: serving from cache, not ready")
		s.ready(false)
		return
	}
	s.log.Info("runtime reachable again: relisting")
	s.Kick()
}

// Kick asks for a relist now.
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run bootstraps, then relists every interval or when kicked, until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	delay := time.Second
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.kick:
		}
		if s.syncOnce(ctx) {
			delay = time.Second
			timer.Reset(s.interval)
			continue
		}
		timer.Reset(delay)
		delay = min(2*delay, s.backoff)
	}
}

func (s *Syncer) syncOnce(ctx context.Context) bool {
	rep, err := s.engine.Sync(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sync with runtime failed; will retry", zap.Error(err))
		}
		if s.synced.Swap(false) {
			s.ready(false)
		}
		return false
	}
	first := !s.synced.Swap(true)
	s.firstOnce.Do(func() { close(s.first) })
	s.log.Info("synced with runtime", zap.String("runtime", rep.Runtime), zap.String("runtime_version", rep.RuntimeVersion), zap.Int("sandboxes", rep.Sandboxes), zap.Int("containers", rep.Containers),
		zap.Int("looked_up", rep.Added), zap.Int("marked_deleted", rep.Deleted), zap.Bool("bootstrap", first))
	if first {
		s.ready(s.Ready())
	}
	return true
}
