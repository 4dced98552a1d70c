package lookup

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// ErrNotFound means the runtime knows the ID neither as a container nor as a
// pod sandbox (now, or recently: see the negative cache).
var ErrNotFound = errors.New("not a container or pod sandbox of the runtime")

// Hint is what a source knows about an ID before the runtime is asked.
type Hint struct {
	// Sandbox says the ID is known to be a pod sandbox (from a list or an
	// event), so PodSandboxStatus is asked first.
	Sandbox bool
	// NewPod says the ID's pod has no known sandbox yet: a cgroup in such a
	// pod is most likely its sandbox, so PodSandboxStatus is asked first.
	NewPod bool
	// Exists says a source saw the ID exist (a cgroup, an event): NotFound
	// then means "not created yet" and is retried.
	Exists bool
	// Cgroup says the ID's cgroup exists, so its first process does too:
	// a record still in state created gets its PID from the cgroup.
	Cgroup bool
	// Gone says a source saw the ID go away: the runtime is asked again for
	// its final state and NotFound means deleted.
	Gone bool
	// Force looks the ID up again even when it is cached.
	Force bool
	// Urgent puts the ID at the front of the queue (an API client waits).
	Urgent bool
}

// Options tune the engine. Zero values take the defaults.
type Options struct {
	Concurrency  int           // parallel lookups towards the runtime (4)
	RateLimit    float64       // runtime calls per second; 0 is unlimited
	MaxRetries   int           // tries after the first for transient failures; 0 never retries
	RetryBase    time.Duration // first retry delay (100ms)
	RetryMax     time.Duration // retry delay cap (2s)
	NegativeTTL  time.Duration // first negative-cache period (30s)
	NegativeMax  time.Duration // negative-cache period cap (30m)
	Enrich       enrich.Options
	Now          func() time.Time
	Sleep        func(ctx context.Context, d time.Duration) error
	PIDOfCgroup  func(cgroupPath string) int // the first PID in a container cgroup, 0 if none
	SyncDeadline time.Duration               // bound of one bootstrap or relist (30s)
}

func (o *Options) setDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = 2 * time.Second
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 30 * time.Second
	}
	if o.NegativeMax < o.NegativeTTL {
		o.NegativeMax = 30 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.SyncDeadline <= 0 {
		o.SyncDeadline = 30 * time.Second
	}
}

// call is one queued or running lookup; everyone asking for the same ID
// while it runs shares it.
type call struct {
	hint Hint
	done chan struct{}
	rec  enrich.Record
	err  error
}

// Engine turns IDs into cached records.
type Engine struct {
	rt    Runtime
	store Store
	rec   Recorder
	log   *zap.Logger
	opts  Options
	limit *limiter

	sandboxes singleflight.Group

	mu       sync.Mutex
	wake     chan struct{}
	queue    []string
	calls    map[string]*call
	running  int
	negative map[string]negEntry
	stale    map[string]bool // sandboxes to fetch again before reuse
	pending  map[string]func(enrich.Record) enrich.Record
}

type negEntry struct {
	until   time.Time
	backoff time.Duration
}

// New creates an engine; Run starts its workers.
func New(rt Runtime, store Store, rec Recorder, log *zap.Logger, opts Options) *Engine {
	opts.setDefaults()
	return &Engine{
		rt: rt, store: store, rec: rec, log: log, opts: opts,
		limit:    newLimiter(opts.RateLimit, opts.Now, opts.Sleep),
		wake:     make(chan struct{}, 1),
		calls:    make(map[string]*call),
		negative: make(map[string]negEntry),
		stale:    make(map[string]bool),
		pending:  make(map[string]func(enrich.Record) enrich.Record),
	}
}

// Stats is the engine's accounting, read at scrape time.
type Stats struct {
	Queued, InFlight, Negative int
}

// Stats returns the queue depth, the lookups running and the negative-cache size.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{Queued: len(e.queue), InFlight: e.running, Negative: len(e.negative)}
}

// Run runs the workers until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < e.opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx)
		}()
	}
	wg.Wait()
	e.failQueued(ctx.Err())
	return nil
}

// Submit queues a lookup of id unless it is cached (and not forced), already
// queued or running, or negatively cached. It never blocks.
func (e *Engine) Submit(id string, hint Hint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.submitLocked(id, hint)
}

func (e *Engine) submitLocked(id string, hint Hint) *call {
	if c, ok := e.calls[id]; ok {
		c.hint = mergeHints(c.hint, hint)
		return c
	}
	if !hint.Force && !hint.Gone {
		if _, err := e.store.Get(id); err == nil {
			return nil
		}
		if n, ok := e.negative[id]; ok && e.opts.Now().Before(n.until) {
			return nil
		}
	}
	c := &call{hint: hint, done: make(chan struct{})}
	e.calls[id] = c
	if hint.Urgent {
		e.queue = append([]string{id}, e.queue...)
	} else {
		e.queue = append(e.queue, id)
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return c
}

func mergeHints(a, b Hint) Hint {
	return Hint{
		Sandbox: a.Sandbox || b.Sandbox, NewPod: a.NewPod || b.NewPod,
		Exists: a.Exists || b.Exists, Cgroup: a.Cgroup || b.Cgroup, Gone: a.Gone || b.Gone,
		Force: a.Force || b.Force, Urgent: a.Urgent || b.Urgent,
	}
}

// Lookup returns id's record, from the cache or by looking it up now (and
// sharing a lookup already queued or running). id must be a full ID.
func (e *Engine) Lookup(ctx context.Context, id string) (enrich.Record, error) {
	if rec, err := e.store.Get(id); err == nil {
		return rec, nil
	}
	e.mu.Lock()
	if n, ok := e.negative[id]; ok && e.opts.Now().Before(n.until) {
		e.mu.Unlock()
		return enrich.Record{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	c := e.submitLocked(id, Hint{Urgent: true})
	e.mu.Unlock()
	if c == nil { // it landed in the cache meanwhile
		return e.store.Get(id)
	}
	select {
	case <-c.done:
		return c.rec, c.err
	case <-ctx.Done():
		return enrich.Record{}, fmt.Errorf("lookup %s: %w", id, ctx.Err())
	}
}

// Wait blocks until every lookup queued or running now has finished.
func (e *Engine) Wait(ctx context.Context, ids []string) error {
	for _, id := range ids {
		e.mu.Lock()
		c := e.calls[id]
		e.mu.Unlock()
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (e *Engine) work(ctx context.Context) {
	for {
		id, c, hint := e.next()
		if c == nil {
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
				continue
			}
		}
		c.rec, c.err = e.resolve(ctx, id, hint)
		e.finish(id, c)
		select { // pass the wake-up on: more may be queued
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// next dequeues an ID and returns a copy of its hint taken under the lock:
// a Submit for the same ID while it runs merges into c.hint concurrently.
func (e *Engine) next() (string, *call, Hint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return "", nil, Hint{}
	}
	id := e.queue[0]
	e.queue[0] = ""
	e.queue = e.queue[1:]
	e.running++
	c := e.calls[id]
	c.hint.Urgent = false
	return id, c, c.hint
}

func (e *Engine) finish(id string, c *call) {
	e.mu.Lock()
	e.running--
	delete(e.calls, id)
	update := e.pending[id]
	delete(e.pending, id)
	e.mu.Unlock()
	if update != nil && c.err == nil {
		c.rec = update(c.rec)
		e.store.Put(c.rec)
	}
	close(c.done)
}

func (e *Engine) failQueued(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.queue {
		c := e.calls[id]
		c.err = fmt.Errorf("lookup %s: %w", id, err)
		close(c.done)
		delete(e.calls, id)
	}
	e.queue = nil
}

// Update applies fn to id's record: now if it is cached, else as soon as a
// lookup running for it finishes. It reports whether it could do either.
// Events use it to change state without asking the runtime again.
func (e *Engine) Update(id string, fn func(enrich.Record) enrich.Record) bool {
	e.mu.Lock()
	if _, running := e.calls[id]; running {
		prev := e.pending[id]
		e.pending[id] = func(r enrich.Record) enrich.Record {
			if prev != nil {
				r = prev(r)
			}
			return fn(r)
		}
		e.mu.Unlock()
		return true
	}
	e.mu.Unlock()
	rec, err := e.store.Get(id)
	if err != nil || rec.ID != id {
		return false
	}
	if next := fn(rec); !reflect.DeepEqual(next, rec) {
		e.store.Put(next) // unchanged records would wake every watcher for nothing
	}
	return true
}

// MarkDeleted records that the runtime deleted id. A lookup of id still
// running applies it when it finishes, so its answer cannot revive a
// container that is gone.
func (e *Engine) MarkDeleted(id string) {
	at := e.opts.Now()
	if !e.Update(id, func(r enrich.Record) enrich.Record {
		if r.DeletedAt == nil {
			r.DeletedAt = &at
		}
		return r
	}) {
		e.store.MarkDeleted(id, at)
	}
}

// InvalidateSandbox makes the next container lookup of the pod fetch its
// sandbox again (a sandbox event or a relist saw it change).
func (e *Engine) InvalidateSandbox(id string) {
	e.mu.Lock()
	e.stale[id] = true
	e.mu.Unlock()
}

func (e *Engine) isStale(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stale[id]
}

func (e *Engine) remember(id string, found bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if found {
		delete(e.negative, id)
		return
	}
	n := e.negative[id]
	switch {
	case n.backoff == 0:
		n.backoff = e.opts.NegativeTTL
	case n.backoff < e.opts.NegativeMax:
		n.backoff = min(2*n.backoff, e.opts.NegativeMax)
	}
	n.until = e.opts.Now().Add(n.backoff)
	e.negative[id] = n
}

// Sweep forgets negative-cache entries whose period is over.
func (e *Engine) Sweep() {
	now := e.opts.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for id, n := range e.negative {
		// Keep the backoff for a while after expiry so an ID that keeps
		// failing climbs the ladder instead of restarting at the bottom.
		if now.Sub(n.until) > e.opts.NegativeMax {
			delete(e.negative, id)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// podKnown says whether a sandbox of the pod is cached.
func (e *Engine) podKnown(podUID string) bool {
	return len(e.store.List(cache.Filter{PodUID: podUID})) > 0
}
