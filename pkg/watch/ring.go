package watch

import "sort"

// ring holds the most recent events in a fixed-size circular buffer.
type ring struct {
	buf   []Event
	start int // index of the oldest event
	n     int
	// floor is the revision below which history is lost: the ring holds
	// every event with a revision above it.
	floor uint64
}

func (r *ring) push(ev Event) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = ev
		r.n++
		return
	}
	r.floor = r.buf[r.start].Revision
	r.buf[r.start] = ev
	r.start = (r.start + 1) % len(r.buf)
}

func (r *ring) at(i int) Event { return r.buf[(r.start+i)%len(r.buf)] }

// since copies the events with a revision above rev, oldest first. The
// caller checks rev >= floor.
func (r *ring) since(rev uint64) []Event {
	first := sort.Search(r.n, func(i int) bool { return r.at(i).Revision > rev })
	out := make([]Event, 0, r.n-first)
	for i := first; i < r.n; i++ {
		out = append(out, r.at(i))
	}
	return out
}
