package cache

import "github.com/cri-enricherd/cri-enricherd/pkg/enrich"

// cgroupClaim is a cgroup ID seen for a container or sandbox that is not
// cached yet (its cgroup often appears before its lookup ends).
type cgroupClaim struct {
	id, seq uint64
}

// CgroupSeen records that the container or sandbox id has the cgroup whose
// ID is cgroupID now: the record carries it from then on, and ByCgroupID
// answers it until CgroupGone. An ID not cached yet gets it when it is.
// When the kernel re-uses the number of a removed directory, the latest
// claim holds it, whatever order the records are written in afterwards.
func (c *Cache) CgroupSeen(id string, cgroupID uint64) {
	if id == "" || cgroupID == 0 {
		return
	}
	c.mu.Lock()
	c.claimSeq++
	e, ok := c.byID[id]
	if !ok {
		c.claims[id] = cgroupClaim{id: cgroupID, seq: c.claimSeq}
		c.mu.Unlock()
		return
	}
	c.unindexState(e)
	e.cgroupSeq, e.cgroupGone = c.claimSeq, false
	c.indexState(e)
	rec := e.rec
	rec.CgroupID = cgroupID
	c.writeLocked(e, rec)
	c.unlockAndPublish()
}

// CgroupGone records that id's cgroup directory was removed: its ID no
// longer answers ByCgroupID (the kernel may give the number to a new
// directory), though the record keeps it.
func (c *Cache) CgroupGone(id string) {
	c.mu.Lock()
	delete(c.claims, id)
	if e, ok := c.byID[id]; ok && !e.cgroupGone {
		c.unindexState(e)
		e.cgroupGone = true
		c.indexState(e)
	}
	c.mu.Unlock()
}

// ByCgroupID returns the record whose cgroup has this ID now. It costs a
// map read: eBPF consumers ask it for every event they see.
func (c *Cache) ByCgroupID(cgroupID uint64) (enrich.Record, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byCgroupID[cgroupID]
	if !ok {
		return enrich.Record{}, false
	}
	e.markUsed()
	return e.rec, true
}

// claimedLocked gives a record about to be inserted the cgroup ID seen for
// it before it was cached, and the order of that claim.
func (c *Cache) claimedLocked(rec enrich.Record) (enrich.Record, uint64) {
	cl, ok := c.claims[rec.ID]
	if !ok {
		return rec, 0
	}
	delete(c.claims, rec.ID)
	rec.CgroupID = cl.id
	return rec, cl.seq
}
