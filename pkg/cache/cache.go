package cache

import (
	"container/heap"
	"context"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// Cache is a bounded, thread-safe LRU of container and pod sandbox records.
// Build one with New; the zero value is not usable.
//
// One lock guards everything. Look-ups take it shared: a read does not move
// its entry in the recency list, it only marks the entry used, and eviction
// gives a used entry a second chance (moves it to the front and clears the
// mark) before it takes the least recently used unmarked one. That is the
// second-chance (CLOCK) approximation of LRU: a read protects a record from
// the next eviction that reaches it, and readers on every core share the
// lock instead of queueing for it (BENCHMARKS.md).
type Cache struct {
	opts      options
	evictions atomic.Uint64

	mu            sync.RWMutex
	byID          map[string]*entry
	byPrefix      map[string]*entry      // first MinPrefixLen chars -> the one entry with them
	prefixClashes map[string][]*entry    // first MinPrefixLen chars -> the entries, when several
	bySandbox     map[string][]*entry    // sandbox ID -> its containers' entries
	byIP          map[string][]*entry    // pod IP -> the ready sandboxes claiming it
	byCgroupID    map[uint64]*entry      // live cgroup ID -> the latest record claiming it
	claims        map[string]cgroupClaim // cgroups seen before their record was cached
	claimSeq      uint64
	recency       recencyList
	deleted       deletedHeap
	containers    int // live, non-sandbox records
	sandboxes     int // live sandbox records
	revision      uint64
	subs          []*subscriber // copy-on-write: delivery reads a snapshot
	pending       []Change      // changes not yet delivered, in revision order
	publishing    bool          // a goroutine is draining pending
}

// New returns an empty cache.
func New(opts ...Option) *Cache {
	c := &Cache{
		opts:          options{capacity: DefaultCapacity, grace: DefaultGracePeriod, now: time.Now},
		byID:          make(map[string]*entry),
		byPrefix:      make(map[string]*entry),
		prefixClashes: make(map[string][]*entry),
		bySandbox:     make(map[string][]*entry),
		byIP:          make(map[string][]*entry),
		byCgroupID:    make(map[uint64]*entry),
		claims:        make(map[string]cgroupClaim),
	}
	for _, o := range opts {
		o(&c.opts)
	}
	c.recency.init()
	return c
}

// Put inserts rec or replaces the record with the same ID, making it the most
// recently used. A replacement goes through enrich.Advance, so it can never
// move the stored state backwards nor bring a deleted record back; a record
// with DeletedAt set is stored as deleted. A sandbox's pod is copied into its
// cached containers (see enrich.FollowSandbox), and a container takes its
// cached sandbox's pod. Records with an empty ID are ignored. If the cache
// is full, a deleted record (the one closest to expiry) is evicted first,
// otherwise the least recently used one.
func (c *Cache) Put(rec enrich.Record) {
	if rec.ID == "" {
		return
	}
	c.mu.Lock()
	c.expireDueLocked()
	if e, ok := c.byID[rec.ID]; ok {
		c.recency.moveToFront(e)
		c.writeLocked(e, rec)
	} else {
		for len(c.byID) >= c.opts.capacity {
			c.evictLocked()
		}
		rec, seq := c.claimedLocked(c.withSandboxLocked(enrich.Advance(enrich.Record{}, rec)))
		c.insertLocked(rec, seq)
		c.emitLocked(Added, rec)
		c.followLocked(rec)
	}
	c.unlockAndPublish()
}

// Update replaces the record with exactly this ID by fn's result, atomically:
// fn gets the stored record and no other write can come in between, so two
// updaters (an event and a relist) never lose each other's change. The
// result goes through enrich.Advance like any write; fn runs under the
// cache lock and must not call the cache. Update reports whether the ID is
// cached; an unchanged result changes nothing and notifies nobody.
func (c *Cache) Update(id string, fn func(enrich.Record) enrich.Record) bool {
	c.mu.Lock()
	c.expireDueLocked()
	e, ok := c.byID[id]
	if ok {
		c.writeLocked(e, fn(e.rec))
	}
	c.unlockAndPublish()
	return ok
}

// writeLocked stores next over e's record, as far as Advance lets it, and
// publishes the change if there is one.
func (c *Cache) writeLocked(e *entry, next enrich.Record) {
	next = c.withSandboxLocked(enrich.Advance(e.rec, next))
	if reflect.DeepEqual(e.rec, next) {
		return
	}
	kind := Updated
	if !e.deleted() && next.DeletedAt != nil {
		kind = Deleted
	}
	c.replaceLocked(e, next)
	c.emitLocked(kind, next)
	c.followLocked(next)
}

// withSandboxLocked gives a container its cached sandbox's pod.
func (c *Cache) withSandboxLocked(rec enrich.Record) enrich.Record {
	sid := sandboxOf(&rec)
	if sid == "" {
		return rec
	}
	if sb, ok := c.byID[sid]; ok && sb.rec.IsPodSandbox {
		rec, _ = enrich.FollowSandbox(rec, sb.rec)
	}
	return rec
}

// followLocked copies a sandbox's pod into its cached containers.
func (c *Cache) followLocked(sb enrich.Record) {
	if !sb.IsPodSandbox {
		return
	}
	for _, m := range slices.Clone(c.bySandbox[sb.ID]) {
		if next, ok := enrich.FollowSandbox(m.rec, sb); ok {
			next = enrich.Advance(m.rec, next)
			c.replaceLocked(m, next)
			c.emitLocked(Updated, next)
		}
	}
}

// MarkDeleted records that the container or sandbox with exactly this ID was
// deleted at at (the clock's now if at is zero). The record keeps its last
// known State and stays answerable for the grace period. It reports whether
// the ID is cached; marking an already deleted record again changes nothing,
// so duplicate events cannot extend the grace period.
func (c *Cache) MarkDeleted(id string, at time.Time) bool {
	c.mu.Lock()
	c.expireDueLocked()
	e, ok := c.byID[id]
	if ok && !e.deleted() {
		if at.IsZero() {
			at = c.opts.now()
		}
		rec := e.rec
		rec.DeletedAt = &at
		c.writeLocked(e, rec)
	}
	c.unlockAndPublish()
	return ok
}

// Delete removes the record with exactly this ID at once, skipping the grace
// period, and reports whether it was cached.
func (c *Cache) Delete(id string) bool {
	c.mu.Lock()
	c.expireDueLocked()
	e, ok := c.byID[id]
	if ok {
		c.removeLocked(e)
		c.emitLocked(Removed, e.rec)
	}
	c.unlockAndPublish()
	return ok
}

// Get returns the record whose ID is idOrPrefix or, failing that, the only
// record whose ID starts with it. Deleted records are returned, with DeletedAt
// set, until their grace period ends. Errors wrap ErrInvalidID, ErrNotFound or
// ErrAmbiguous.
func (c *Cache) Get(idOrPrefix string) (enrich.Record, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, err := c.findLocked(idOrPrefix)
	if err != nil {
		return enrich.Record{}, err
	}
	e.markUsed()
	return e.rec, nil
}

// GetSandbox returns the pod sandbox record with exactly this ID, including a
// deleted sandbox still within its grace period.
func (c *Cache) GetSandbox(sandboxID string) (enrich.Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byID[sandboxID]
	if !ok || !e.rec.IsPodSandbox || c.expired(e) {
		return enrich.Record{}, false
	}
	e.markUsed()
	return e.rec, true
}

// Len returns the number of records held, deleted ones within their grace
// period included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byID) - c.expiredCountLocked()
}

// Counts returns the number of live containers, live sandboxes and deleted
// records (of either kind) still within their grace period. They add up to
// Len.
func (c *Cache) Counts() (containers, sandboxes, deleted int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.containers, c.sandboxes, len(c.deleted) - c.expiredCountLocked()
}

// Reads never change the cache's content nor publish: a deleted record past
// its grace period is simply not answered until a write or the sweeper
// (Run) removes it and publishes the removal. So changes reach subscribers
// only from writes, on the writer's goroutine, never from a reader holding
// some other lock.

// expired says whether e is a deleted record past its grace period.
func (c *Cache) expired(e *entry) bool {
	return e.deleted() && c.opts.now().Sub(*e.rec.DeletedAt) > c.opts.grace
}

func (c *Cache) expiredCountLocked() int {
	n := 0
	for _, e := range c.deleted {
		if c.expired(e) {
			n++
		}
	}
	return n
}

// Evictions returns how many records have been evicted because the cache was
// full since it was built. It never takes the cache lock.
func (c *Cache) Evictions() uint64 { return c.evictions.Load() }

// Revision returns the revision of the latest change (0 before any change).
func (c *Cache) Revision() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.revision
}

// Sweep removes every deleted record whose grace period ended before now and
// returns how many it removed.
func (c *Cache) Sweep(now time.Time) int {
	c.mu.Lock()
	n := c.expireLocked(now)
	c.unlockAndPublish()
	return n
}

// Run calls Sweep with the cache's clock every interval until ctx is done, so
// watchers see Removed changes even when nobody reads the cache.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sweep(c.opts.now())
		}
	}
}

func (c *Cache) insertLocked(rec enrich.Record, cgroupSeq uint64) {
	e := &entry{rec: rec, heapIndex: -1, cgroupSeq: cgroupSeq}
	c.indexIdentity(e)
	c.indexState(e)
	c.recency.pushFront(e)
}

// replaceLocked swaps the record of an entry with the same ID.
func (c *Cache) replaceLocked(e *entry, rec enrich.Record) {
	c.unindexState(e)
	e.rec = rec
	c.indexState(e)
}

func (c *Cache) removeLocked(e *entry) {
	c.unindexState(e)
	c.unindexIdentity(e)
	c.recency.remove(e)
}

// indexState adds e to the indexes and counters that depend on its content.
func (c *Cache) indexState(e *entry) {
	switch {
	case e.deleted():
		heap.Push(&c.deleted, e)
	case e.rec.IsPodSandbox:
		c.sandboxes++
	default:
		c.containers++
	}
	if sid := sandboxOf(&e.rec); sid != "" {
		c.bySandbox[sid] = append(c.bySandbox[sid], e)
	}
	for _, ip := range claimedIPs(&e.rec) {
		c.byIP[ip] = append(c.byIP[ip], e)
	}
	if id := e.rec.CgroupID; id != 0 && !e.cgroupGone && !e.deleted() {
		if holder := c.byCgroupID[id]; holder == nil || holder.cgroupSeq <= e.cgroupSeq {
			c.byCgroupID[id] = e
		}
	}
}

func (c *Cache) unindexState(e *entry) {
	switch {
	case e.deleted():
		heap.Remove(&c.deleted, e.heapIndex)
	case e.rec.IsPodSandbox:
		c.sandboxes--
	default:
		c.containers--
	}
	if sid := sandboxOf(&e.rec); sid != "" {
		c.bySandbox[sid] = removeEntry(c.bySandbox[sid], e)
		if len(c.bySandbox[sid]) == 0 {
			delete(c.bySandbox, sid)
		}
	}
	for _, ip := range claimedIPs(&e.rec) {
		if c.byIP[ip] = removeEntry(c.byIP[ip], e); len(c.byIP[ip]) == 0 {
			delete(c.byIP, ip)
		}
	}
	if id := e.rec.CgroupID; id != 0 && c.byCgroupID[id] == e {
		delete(c.byCgroupID, id)
	}
}

// removeEntry takes e out of a small index list. A slice, not a map: a pod
// has a handful of containers and an IP one sandbox, and a map per pod cost
// about 50 bytes per cached container more (BENCHMARKS.md).
func removeEntry(list []*entry, e *entry) []*entry {
	i := slices.Index(list, e)
	if i < 0 {
		return list
	}
	last := len(list) - 1
	list[i], list[last] = list[last], nil
	return list[:last]
}

// evictLocked removes one record to make room: a deleted one if any, since
// it is on its way out anyway, otherwise the least recently used.
func (c *Cache) evictLocked() {
	var victim *entry
	if len(c.deleted) > 0 {
		victim = c.deleted[0]
	} else {
		victim = c.recency.leastRecent()
	}
	c.removeLocked(victim)
	c.evictions.Add(1)
	c.emitLocked(Removed, victim.rec)
}

// expireDueLocked applies the grace period lazily. It reads the clock only
// when there is something to expire, keeping Get cheap.
func (c *Cache) expireDueLocked() {
	if len(c.deleted) > 0 {
		c.expireLocked(c.opts.now())
	}
}

func (c *Cache) expireLocked(now time.Time) int {
	n := 0
	for len(c.deleted) > 0 && now.Sub(*c.deleted[0].rec.DeletedAt) > c.opts.grace {
		e := c.deleted[0]
		c.removeLocked(e)
		c.emitLocked(Removed, e.rec)
		n++
	}
	return n
}
