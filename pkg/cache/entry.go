package cache

import (
	"container/heap"
	"sync/atomic"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// entry is one cached record plus its places in the recency list and the
// deletion heap. The links are intrusive so that Get never allocates.
type entry struct {
	prev, next *entry
	// used says the record was read since the entry last reached the front
	// of the recency list. Reads set it under the shared lock, so it is
	// atomic; it sits beside the start of the record a read then copies.
	used      atomic.Bool
	rec       enrich.Record
	heapIndex int // position in deletedHeap; -1 while the record is live
	// cgroupSeq orders the claims on a cgroup ID (the kernel re-uses the
	// inode of a removed directory): the latest claim holds the ID.
	cgroupSeq uint64
	// cgroupGone says the record's cgroup directory was removed: its ID
	// stays in the record but no longer answers.
	cgroupGone bool
}

func (e *entry) deleted() bool { return e.rec.DeletedAt != nil }

// markUsed records a read without writing to the shared list: only the
// first read since the entry reached the front writes the flag at all.
func (e *entry) markUsed() {
	if !e.used.Load() {
		e.used.Store(true)
	}
}

// recencyList orders entries from most to least recently used. The zero
// value is not usable: call init.
type recencyList struct {
	root entry // sentinel: root.next is the most, root.prev the least recent
}

func (l *recencyList) init() { l.root.next, l.root.prev = &l.root, &l.root }

func (l *recencyList) pushFront(e *entry) {
	e.used.Store(false)
	e.prev, e.next = &l.root, l.root.next
	e.prev.next, e.next.prev = e, e
}

func (l *recencyList) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (l *recencyList) moveToFront(e *entry) {
	if l.root.next == e {
		return
	}
	l.remove(e)
	l.pushFront(e)
}

// leastRecent returns the entry to evict: the one nearest the back that was
// not read since it last reached the front. Entries passed over on the way
// were read, so they move to the front with their mark cleared. The list
// must not be empty.
func (l *recencyList) leastRecent() *entry {
	for {
		e := l.root.prev
		if !e.used.Load() {
			return e
		}
		l.moveToFront(e)
	}
}

// deletedHeap orders deleted entries by DeletedAt, earliest first, so that
// expiry only looks at the top and eviction can pick the record that would
// expire soonest anyway.
type deletedHeap []*entry

var _ heap.Interface = (*deletedHeap)(nil)

func (h deletedHeap) Len() int { return len(h) }

func (h deletedHeap) Less(i, j int) bool {
	a, b := h[i].rec.DeletedAt, h[j].rec.DeletedAt
	if !a.Equal(*b) {
		return a.Before(*b)
	}
	return h[i].rec.ID < h[j].rec.ID
}

func (h deletedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}

func (h *deletedHeap) Push(x any) {
	e := x.(*entry)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}

func (h *deletedHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIndex = -1
	return e
}
