// Package promtext reads a Prometheus text exposition into samples, for the
// end-to-end tests and the benchmark programs that scrape a live daemon.
package promtext

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Samples maps a series' text (name{labels}) to its value.
type Samples map[string]float64

// Parse reads every sample line of an exposition; comments are skipped.
func Parse(r io.Reader) (Samples, error) {
	out := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// Sum adds the samples of the metric name whose series text contains every
// given label pair (such as `rpc="ContainerStatus"`).
func (s Samples) Sum(name string, contains ...string) float64 {
	var total float64
	for series, v := range s {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, c := range contains {
			ok = ok && strings.Contains(series, c)
		}
		if ok {
			total += v
		}
	}
	return total
}
