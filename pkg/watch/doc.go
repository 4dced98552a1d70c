// Package watch owns the fan-out of record changes to the API's watchers,
// shared by the HTTP and the gRPC API: one subscription to the cache, a view
// of the live records that gives each new watcher the current state, a
// bounded ring of recent events from which a reconnecting watcher resumes,
// and a bounded buffer per watcher.
//
// The hub runs on the cache's notification path and never blocks it: an
// event goes into a watcher's buffer or, when that is full, the watcher is
// dropped and told how far behind it was. Memory therefore stays bounded by
// the number of watchers times the buffer size, however slow a client is.
//
// # Events
//
// A stream describes the set of live records (DeletedAt unset). ADDED and
// UPDATED both put a record into the watcher's view; DELETED takes it out.
// The cache's changes are translated accordingly: marking a record deleted
// and evicting a live one are DELETED, the removal of an already deleted
// record says nothing new and is not sent. A container the daemon learned
// of only after it ended is sent as DELETED without an ADDED, so a watcher
// still sees short-lived containers.
//
// # Revisions
//
// Each event carries the revision of the cache change it reports, offset by
// the hub's start time in microseconds. Revisions thus increase along a
// stream (with gaps, for changes that produce no event) and start above
// every revision of an earlier run of the daemon, so a revision kept across
// a restart is never mistaken for a current one. The events of the initial
// state are not changes and carry revision 0: a watcher cut off before the
// SYNCED event resumes from 0, which restarts with the full state.
package watch
