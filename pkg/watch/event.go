package watch

import (
	"errors"
	"fmt"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// EventType says what an Event reports. The values are the names of the
// gRPC API's EventType enum, so both APIs spell them the same way.
type EventType string

// The event types.
const (
	// Added is a record the watcher has not seen live.
	Added EventType = "ADDED"
	// Updated is a new version of a live record.
	Updated EventType = "UPDATED"
	// Deleted is a record that is no longer live.
	Deleted EventType = "DELETED"
	// Synced carries no record: the events before it brought the watcher to
	// the state at its revision.
	Synced EventType = "SYNCED"
)

// Event is one event of a watch stream. Record is shared with the cache
// and every other watcher: treat it as read-only.
type Event struct {
	Type     EventType      `json:"type"`
	Revision uint64         `json:"revision"`
	Record   *enrich.Record `json:"record,omitempty"`
}

// ErrTooManyWatchers means the hub already serves its maximum number of
// watchers.
var ErrTooManyWatchers = errors.New("too many watchers")

// ErrClosed means the hub was closed: the daemon is shutting down.
var ErrClosed = errors.New("watch hub closed: daemon shutting down")

// ErrRevisionTooOld means a resume revision is older than the replay
// window, or comes from an earlier run of the daemon. The watcher must drop
// its state and watch again from revision 0.
var ErrRevisionTooOld = errors.New("revision too old")

// ErrRevisionUnknown means a resume revision is newer than any the hub has
// reported.
var ErrRevisionUnknown = errors.New("revision unknown")

// TooSlowError ends the stream of a watcher whose buffer overflowed.
type TooSlowError struct {
	// Behind is how many events were waiting for the watcher when it was
	// dropped, counting the one that did not fit.
	Behind int
}

func (e *TooSlowError) Error() string {
	return fmt.Sprintf("watcher too slow: %d events behind", e.Behind)
}
