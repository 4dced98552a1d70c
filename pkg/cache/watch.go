package cache

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// ChangeKind says what happened to a record.
type ChangeKind int

// The change kinds.
const (
	// Added means a record with a new ID was stored.
	Added ChangeKind = iota + 1
	// Updated means a stored record was replaced (this includes a deleted
	// record brought back to life by a live one).
	Updated
	// Deleted means a live record was marked deleted; it stays answerable
	// for the grace period.
	Deleted
	// Removed means a record left the cache: grace period over, Delete, or
	// eviction.
	Removed
)

var changeKindNames = [...]string{Added: "added", Updated: "updated", Deleted: "deleted", Removed: "removed"}

// String returns the lowercase name of k, for logs and API payloads.
func (k ChangeKind) String() string {
	if k < Added || k > Removed {
		return "unknown"
	}
	return changeKindNames[k]
}

// Change is one change to the cache. Record is the record after the change,
// or, for Removed, the last record stored. Revision numbers are consecutive.
type Change struct {
	Kind     ChangeKind
	Record   enrich.Record
	Revision uint64
}

type subscriber struct {
	fn     func(Change)
	after  uint64 // deliver only changes with a higher revision
	active atomic.Bool
}

// Subscribe registers fn for every change made after it returns and returns
// a function that unregisters it.
//
// fn is called synchronously on a goroutine that changed (or expired) records,
// outside the cache lock, in revision order, and never concurrently with
// itself or other subscribers. While one goroutine is delivering, changes made
// by others are queued and delivered by it, so a writer never waits for a
// subscriber but its own change may be delivered after it returns.
//
// fn must not block: it should push into a bounded buffer and drop or
// disconnect its consumer when that is full, because a slow fn delays every
// later change for all subscribers. fn may read and even write the cache.
// fn must not panic. After unsubscribe returns, fn may still be called once by
// a delivery already in progress.
func (c *Cache) Subscribe(fn func(Change)) (unsubscribe func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subscribeLocked(fn)
}

// SnapshotAndSubscribe returns every record, deleted ones included, sorted
// like List, and the revision they reflect, and subscribes fn atomically:
// fn receives exactly the changes with a revision above rev, so a watcher
// that applies them to records misses nothing and sees nothing twice.
func (c *Cache) SnapshotAndSubscribe(fn func(Change)) (records []enrich.Record, rev uint64, unsubscribe func()) {
	c.mu.Lock()
	records, rev = c.allLocked(), c.revision
	unsubscribe = c.subscribeLocked(fn)
	c.mu.Unlock()
	sortRecords(records)
	return records, rev, unsubscribe
}

func (c *Cache) subscribeLocked(fn func(Change)) func() {
	s := &subscriber{fn: fn, after: c.revision}
	s.active.Store(true)
	c.subs = append(slices.Clip(c.subs), s)
	var once sync.Once
	return func() { once.Do(func() { c.unsubscribe(s) }) }
}

func (c *Cache) unsubscribe(s *subscriber) {
	s.active.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.subs = slices.DeleteFunc(slices.Clone(c.subs), func(o *subscriber) bool { return o == s })
}

// emitLocked bumps the revision and queues the change for delivery. Nothing
// is queued without subscribers: a later subscriber only wants later changes.
func (c *Cache) emitLocked(kind ChangeKind, rec enrich.Record) {
	c.revision++
	if len(c.subs) > 0 {
		c.pending = append(c.pending, Change{Kind: kind, Record: rec, Revision: c.revision})
	}
}

// unlockAndPublish releases the lock and, if there are queued changes and no
// goroutine is delivering yet, delivers them on this goroutine. Claiming the
// delivery under the lock is what keeps revision order across writers.
func (c *Cache) unlockAndPublish() {
	claimed := len(c.pending) > 0 && !c.publishing
	if claimed {
		c.publishing = true
	}
	c.mu.Unlock()
	if claimed {
		c.drain()
	}
}

// drain delivers queued changes until the queue is empty. If a subscriber
// panics, the claim is released so that later writers can deliver again.
func (c *Cache) drain() {
	finished := false
	defer func() {
		if !finished {
			c.mu.Lock()
			c.publishing = false
			c.mu.Unlock()
		}
	}()
	for {
		c.mu.Lock()
		batch, subs := c.pending, c.subs
		c.pending = nil
		if len(batch) == 0 {
			c.publishing = false
			c.mu.Unlock()
			finished = true
			return
		}
		c.mu.Unlock()
		deliver(batch, subs)
	}
}

func deliver(batch []Change, subs []*subscriber) {
	for _, ch := range batch {
		for _, s := range subs {
			if ch.Revision > s.after && s.active.Load() {
				s.fn(ch)
			}
		}
	}
}
