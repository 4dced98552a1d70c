package lookup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// ErrNotFound means the runtime knows the ID neither as a container nor as a
// pod sandbox (now, or recently: see the negative cache).
var ErrNotFound = errors.New("not a container or pod sandbox of the runtime")

// ErrRateLimited means an on-demand lookup was refused because API clients
// asked for more unknown IDs than Options.OnDemandRate allows.
var ErrRateLimited = errors.New("on-demand lookups over their rate limit")

// Hint is what a source knows about an ID before the runtime is asked.
type Hint struct {
	// Sandbox says the ID is known to be a pod sandbox (from a list or an
	// event), so PodSandboxStatus is asked first.
	Sandbox bool
	// NewPod says the ID's pod has no known sandbox yet: a cgroup in such a
	// pod is most likely its sandbox, so PodSandboxStatus is asked first.
	NewPod bool
	// Exists says a source saw the ID exist (a cgroup, an event): NotFound
	// then means "not registered yet", and the engine waits for the
	// runtime to list it instead of caching the miss.
	Exists bool
	// Cgroup says the ID was seen through its cgroup with no event stream
	// to tell when it starts: its status is asked once the runtime lists
	// it started (ready), so one ContainerStatus gives its PID.
	Cgroup bool
	// Gone says a source saw the ID go away: the runtime is asked again for
	// its final state and NotFound means deleted.
	Gone bool
	// Force looks the ID up again even when it is cached.
	Force bool
	// Urgent puts the ID at the front of the queue (an API client waits).
	Urgent bool
	// Nudge says the runtime just did something to the ID (created it,
	// started its task): an ID already waiting is listed again at once
	// instead of at the end of its backoff.
	Nudge bool
	// Started says the runtime announced the ID's start (containerd's
	// /tasks/start): a List may still show it created for a moment (the CRI
	// plugin records the start after the task runs), so it is followed
	// closely, not left to wait for an announcement that already came.
	Started bool
	// created is the container's status as the runtime listed it or sent it
	// in its CREATED event, before it started: its record is made from it
	// (partial) without a status call; the status is asked once it started.
	created *createdStatus
}

// createdStatus is a non-verbose status and the sandbox the runtime named
// beside it (the status itself does not say).
type createdStatus struct {
	status    *runtimeapi.ContainerStatus
	sandboxID string
}

// Options tune the engine. Zero values take the defaults.
type Options struct {
	Concurrency   int           // parallel lookups towards the runtime (4)
	RateLimit     float64       // runtime calls per second, in bursts of up to one second's worth; 0 is unlimited
	OnDemandRate  float64       // API lookups of unknown IDs per second; 0 is unlimited
	OnDemandBurst int           // API lookups of unknown IDs at once (1)
	MaxRetries    int           // tries after the first for transient failures; 0 never retries
	RetryBase     time.Duration // first retry delay (100ms)
	RetryMax      time.Duration // retry delay cap (2s)
	NegativeTTL   time.Duration // first negative-cache period (30s)
	NegativeMax   time.Duration // negative-cache period cap (30m)
	Enrich        enrich.Options
	Now           func() time.Time
	Sleep         func(ctx context.Context, d time.Duration) error
	SyncDeadline  time.Duration // bound of one bootstrap or relist (30s)
	Wait          WaitOptions
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
	if o.OnDemandBurst <= 0 {
		o.OnDemandBurst = 1
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
	o.Wait.setDefaults()
}

// newRateLimiter is a token bucket of perSecond tokens a second holding up
// to burst; perSecond 0 is no limit at all.
func newRateLimiter(perSecond float64, burst int) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))
}

// call is one queued or running lookup; everyone asking for the same ID
// while it runs shares it.
type call struct {
	hint Hint
	done chan struct{}
	rec  enrich.Record
	err  error
	// running is set once a worker took the call: its hint was read, so a
	// later Force or Gone asks the runtime again after it (again).
	running bool
	again   *Hint
}

// Engine turns IDs into cached records.
type Engine struct {
	rt       Runtime
	store    Store
	rec      Recorder
	log      *zap.Logger
	opts     Options
	limit    *rate.Limiter // every runtime call
	ondemand *rate.Limiter // API lookups of IDs nobody else asked for
	waits    *waiter

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
	e := &Engine{
		rt: rt, store: store, rec: rec, log: log, opts: opts,
		limit:    newRateLimiter(opts.RateLimit, int(math.Ceil(opts.RateLimit))),
		ondemand: newRateLimiter(opts.OnDemandRate, opts.OnDemandBurst),
		wake:     make(chan struct{}, 1),
		calls:    make(map[string]*call),
		negative: make(map[string]negEntry),
		stale:    make(map[string]bool),
		pending:  make(map[string]func(enrich.Record) enrich.Record),
	}
	e.waits = newWaiter(e, opts.Wait)
	return e
}

// Stats is the engine's accounting, read at scrape time.
type Stats struct {
	Queued, InFlight, Negative, Waiting int
}

// Stats returns the queue depth, the lookups running, the negative-cache
// size and the IDs waiting for the runtime to report them started.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	s := Stats{Queued: len(e.queue), InFlight: e.running, Negative: len(e.negative)}
	e.mu.Unlock()
	s.Waiting = e.waits.len()
	return s
}

// Run runs the workers and the waiter until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < e.opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.waits.run(ctx)
	}()
	wg.Wait()
	e.failQueued(ctx.Err())
	return nil
}

// Submit queues a lookup of id unless it is cached (and not forced), already
// queued or running, or negatively cached. It never blocks.
//
// An ID seen only through its cgroup (no event stream) goes to the waiter,
// which lists it at once: a container still created gets a partial record
// from the listing, before its first process runs, and its status once the
// runtime lists it started (one ContainerStatus, PID included); a sandbox,
// which the runtime registers and makes ready a moment after its cgroup
// appears, gets its PodSandboxStatus once listed ready.
func (e *Engine) Submit(id string, hint Hint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.submitOrWaitLocked(id, hint)
}

func (e *Engine) submitOrWaitLocked(id string, hint Hint) {
	if hint.Cgroup && hint.created == nil && !hint.Force && !hint.Gone && e.calls[id] == nil && e.shouldWaitLocked(id, hint) {
		e.waits.add(id, hint, reasonNotStarted)
		return
	}
	e.submitLocked(id, hint)
}

// submitWaited moves id from the waiter to the queue under the engine's
// lock, so a source's Submit cannot fall between the two and be lost; a
// start announced while it waited goes with it.
func (e *Engine) submitWaited(id string, hint Hint) {
	e.mu.Lock()
	defer e.mu.Unlock()
	hint.Started = e.waits.take(id) || hint.Started
	e.submitOrWaitLocked(id, hint)
}

// ResumeWaits lists at once every ID waiting for a start to be announced:
// the source that announced starts went away (see WaitOptions.Announced).
func (e *Engine) ResumeWaits() { e.waits.resume() }

// shouldWaitLocked says whether a cgroup's ID waits before its status is
// asked: a cached container that has not started yet, or an unknown ID that
// is not negatively cached.
func (e *Engine) shouldWaitLocked(id string, hint Hint) bool {
	if rec, err := e.store.Get(id); err == nil {
		return rec.ID == id && !rec.IsPodSandbox && rec.State == "created" && rec.DeletedAt == nil
	}
	n, ok := e.negative[id]
	return !ok || !e.opts.Now().Before(n.until)
}

// skipLocked says whether an unforced lookup of id has nothing to do: it is
// cached, or negatively cached.
func (e *Engine) skipLocked(id string) bool {
	if _, err := e.store.Get(id); err == nil {
		return true
	}
	n, ok := e.negative[id]
	return ok && e.opts.Now().Before(n.until)
}

func (e *Engine) submitLocked(id string, hint Hint) *call {
	if c, ok := e.calls[id]; ok {
		c.hint = mergeHints(c.hint, hint)
		if c.running && (hint.Force || hint.Gone) {
			// The answer on its way may predate what the source just saw
			// (a cgroup gone, an event): ask once more after it.
			again := mergeHints(Hint{}, hint)
			if c.again != nil {
				again = mergeHints(*c.again, hint)
			}
			c.again = &again
		}
		return c
	}
	if !hint.Force && !hint.Gone && e.skipLocked(id) {
		return nil
	}
	e.waits.remove(id)
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
	created := a.created
	if created == nil {
		created = b.created
	}
	return Hint{
		Sandbox: a.Sandbox || b.Sandbox, NewPod: a.NewPod || b.NewPod,
		Exists: a.Exists || b.Exists, Cgroup: a.Cgroup || b.Cgroup, Gone: a.Gone || b.Gone,
		Force: a.Force || b.Force, Urgent: a.Urgent || b.Urgent, Started: a.Started || b.Started,
		created: created,
	}
}

// Lookup returns id's record, from the cache or by looking it up now (and
// sharing a lookup already queued or running). id must be a full ID. A
// lookup only an API client wants is bounded by Options.OnDemandRate:
// beyond it, ErrRateLimited, so a local client cannot make the daemon
// hammer the runtime with made-up IDs.
func (e *Engine) Lookup(ctx context.Context, id string) (enrich.Record, error) {
	if rec, err := e.store.Get(id); err == nil {
		return rec, nil
	}
	e.mu.Lock()
	if n, ok := e.negative[id]; ok && e.opts.Now().Before(n.until) {
		e.mu.Unlock()
		return enrich.Record{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if _, shared := e.calls[id]; !shared && !e.waits.has(id) && !e.ondemand.Allow() {
		e.mu.Unlock()
		e.rec.OnDemandRefused()
		return enrich.Record{}, fmt.Errorf("lookup %s: %w", id, ErrRateLimited)
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
	c.running = true
	return id, c, c.hint
}

// finish applies the updates that came in while the lookup ran (an event
// must not be lost to an answer the runtime gave before it), then releases
// everyone waiting.
func (e *Engine) finish(id string, c *call) {
	e.mu.Lock()
	e.running--
	delete(e.calls, id)
	update := e.pending[id]
	delete(e.pending, id)
	again := c.again
	// The hint as merged while the lookup ran: a cgroup seen meanwhile
	// counts too.
	followStart := c.hint.Cgroup && !c.hint.Gone && c.err == nil && !c.rec.IsPodSandbox && c.rec.State == "created"
	started := c.hint.Started // announced before or while the lookup ran
	e.mu.Unlock()
	if followStart {
		// Known before its first process runs; its PID once it started.
		e.waits.followStart(id, started)
	}
	if update != nil && c.err == nil && e.store.Update(id, update) {
		if rec, err := e.store.Get(id); err == nil && rec.ID == id {
			c.rec = rec
			e.askPID(rec)
		}
	}
	close(c.done)
	if again != nil {
		e.Submit(id, *again)
	}
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

// Update applies fn to id's record, atomically in the store: now if it is
// cached, else as soon as a lookup running for it finishes. It reports
// whether it could do either. Events and relists use it to change state
// without asking the runtime again; the store keeps states moving forward.
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
	if !e.store.Update(id, fn) {
		return false
	}
	if rec, err := e.store.Get(id); err == nil && rec.ID == id {
		e.askPID(rec)
	}
	return true
}

// askPID asks once more for a container that an event or a list moved to
// running without its PID: only ContainerStatus tells the init process, so
// the record would otherwise say running with PID 0.
func (e *Engine) askPID(rec enrich.Record) {
	if !rec.IsPodSandbox && rec.State == "running" && rec.PID == 0 && rec.DeletedAt == nil {
		e.Submit(rec.ID, Hint{Force: true})
	}
}

// MarkDeleted records that the runtime deleted id. A lookup of id still
// running applies it when it finishes, so its answer cannot revive a
// container that is gone.
func (e *Engine) MarkDeleted(id string) {
	at := e.opts.Now()
	e.waits.remove(id)
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

// PodKnown says whether a sandbox of the pod is cached.
func (e *Engine) PodKnown(podUID string) bool {
	return len(e.store.List(cache.Filter{PodUID: podUID})) > 0
}

// Cached returns id's cached record, deleted or not.
func (e *Engine) Cached(id string) (enrich.Record, bool) {
	rec, err := e.store.Get(id)
	return rec, err == nil && rec.ID == id
}

// CgroupSeen records that id's cgroup has this cgroup v2 ID.
func (e *Engine) CgroupSeen(id string, cgroupID uint64) { e.store.CgroupSeen(id, cgroupID) }

// CgroupGone records that id's cgroup directory was removed.
func (e *Engine) CgroupGone(id string) { e.store.CgroupGone(id) }
