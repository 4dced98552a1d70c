// Package cache owns the node's in-memory view of enriched containers and pod
// sandboxes: a bounded LRU of enrich.Record keyed by runtime ID, with look-up
// by unique ID prefix, an index from each sandbox to its containers, a grace
// period during which deleted records stay answerable, and an ordered change
// feed for watchers.
//
// The lookup engine writes records; the outputs (API, metrics collector) read
// them. The cache imports neither the CRI client nor the outputs, so it can be
// tested with plain records and a fake clock.
//
// # Records are shared values
//
// The cache never changes a record after storing it: MarkDeleted stores a new
// copy with DeletedAt set. A Record returned by any method is therefore safe
// to read from any goroutine. Its maps, slices and pointers are shared with
// the cache and with every other reader, so callers must treat them as
// read-only, and a caller of Put must not change them after the call.
//
// # Deleted records
//
// A record whose DeletedAt is set is kept until now - DeletedAt exceeds the
// grace period, so a late look-up for a container that just exited still
// answers. Expired records are removed lazily by every method and eagerly by
// Sweep (or Run, which calls Sweep on a ticker); either way watchers get a
// Removed change.
//
// # Change feed
//
// Every change bumps a revision and is delivered to subscribers in revision
// order, outside the cache lock, never to two subscribers at once. See
// Subscribe for the rules a subscriber must follow.
package cache
