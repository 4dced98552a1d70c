// Package promtext reads a live daemon's /metrics page into samples for the
// tests and the benchmark programs. Parsing is expfmt's, the Prometheus
// client libraries' own; this package only flattens the families (histogram
// buckets, _sum and _count included) into one value per series and sums
// the series a caller asks about.
package promtext

import (
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Samples maps a series, as Prometheus prints it (name{label="value", ...}
// with the labels sorted), to its value.
type Samples map[string]float64

// Parse reads a text exposition.
func Parse(r io.Reader) (Samples, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse exposition: %w", err)
	}
	out := Samples{}
	for _, f := range families {
		vector, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, f)
		if err != nil {
			return nil, fmt.Errorf("samples of %s: %w", f.GetName(), err)
		}
		for _, s := range vector {
			out[s.Metric.String()] = float64(s.Value)
		}
	}
	return out, nil
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
