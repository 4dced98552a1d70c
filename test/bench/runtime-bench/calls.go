package main

import (
	"strings"

	"github.com/cri-enricherd/cri-enricherd/internal/promtext"
	"github.com/cri-enricherd/cri-enricherd/test/internal/runtimeresult"
)

// callSnapshot is a counter's totals before the pods were made: the
// daemon's start-up sync and anything else before them is not theirs.
type callSnapshot struct {
	total, node map[string]int
}

func snapshotCalls(c callCounter) callSnapshot {
	s := callSnapshot{total: map[string]int{}, node: map[string]int{}}
	for _, rpc := range runtimeresult.RPCs {
		s.total[rpc], s.node[rpc] = c.Calls(rpc), c.CallsFor(rpc, "")
	}
	return s
}

// since returns the calls made since the snapshot: those naming this run's
// IDs plus the Lists of the whole node (ours), and those naming other IDs.
// No ID of the run existed at the snapshot, so their counts are all new.
func (s callSnapshot) since(c callCounter, ids map[string]bool) (ours, other map[string]int) {
	ours, other = map[string]int{}, map[string]int{}
	for _, rpc := range runtimeresult.RPCs {
		n := c.CallsFor(rpc, "") - s.node[rpc]
		for id := range ids {
			n += c.CallsFor(rpc, id)
		}
		ours[rpc] = n
		other[rpc] = c.Calls(rpc) - s.total[rpc] - n
	}
	return ours, other
}

// byLabels returns a counter's increase between two scrapes, by the values
// of the given labels joined with "/" (rpc/reason): the daemon's retries
// and waits by why.
func byLabels(before, after promtext.Samples, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for series, v := range after {
		if !strings.HasPrefix(series, name+"{") {
			continue
		}
		if d := v - before[series]; d > 0 {
			out[labelValues(series, labels)] += d
		}
	}
	return out
}

// labelValues reads label values out of a series as Prometheus prints it
// (name{a="x", b="y"}); the label values here are bounded enums without
// quotes or commas.
func labelValues(series string, labels []string) string {
	vals := make([]string, len(labels))
	for i, l := range labels {
		if _, rest, ok := strings.Cut(series, l+`="`); ok {
			vals[i], _, _ = strings.Cut(rest, `"`)
		}
	}
	return strings.Join(vals, "/")
}
