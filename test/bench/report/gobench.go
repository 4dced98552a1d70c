package main

import (
	"fmt"
	"os"
	"path"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// minRuns is the fewest -count runs for which benchstat's 95% confidence
// interval of the median is finite.
const minRuns = 6

// benchStats summarize one benchmark's runs by unit, as benchfmt tidies
// them (sec/op, B/op, allocs/op): the median and the 95% confidence
// interval around it that benchstat prints as ± percent.
type benchStats map[string]benchmath.Summary

// parseGoBench reads go test -bench output, keyed
// "pkg-base.BenchmarkName" without the -GOMAXPROCS suffix (pkg-base is the
// last element of the package path), and the fewest runs any benchmark had.
func parseGoBench(file string) (map[string]benchStats, int, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	runs := map[string]map[string][]float64{}
	r := benchfmt.NewReader(f, file)
	for r.Scan() {
		// A *benchfmt.SyntaxError is a test's log line that starts with
		// "Benchmark"; unit metadata says nothing the table shows.
		res, ok := r.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		name := benchKey(res)
		if runs[name] == nil {
			runs[name] = map[string][]float64{}
		}
		for _, v := range res.Values {
			runs[name][v.Unit] = append(runs[name][v.Unit], v.Value)
		}
	}
	if err := r.Err(); err != nil {
		return nil, 0, err
	}
	stats, fewest := summarize(runs)
	return stats, fewest, nil
}

// benchKey names a result "pkg-base.BenchmarkName/sub" without GOMAXPROCS.
func benchKey(res *benchfmt.Result) string {
	base, parts := res.Name.Parts()
	name := "Benchmark" + string(base)
	for _, p := range parts {
		if p[0] == '/' {
			name += string(p)
		}
	}
	return path.Base(res.GetConfig("pkg")) + "." + name
}

func summarize(runs map[string]map[string][]float64) (map[string]benchStats, int) {
	out := map[string]benchStats{}
	fewest := 0
	for name, units := range runs {
		out[name] = benchStats{}
		for unit, vs := range units {
			if fewest == 0 || len(vs) < fewest {
				fewest = len(vs)
			}
			out[name][unit] = benchmath.AssumeNothing.Summary(benchmath.NewSample(vs, &benchmath.DefaultThresholds), 0.95)
		}
	}
	return out, fewest
}

// goBenchRows are the micro-benchmarks: the cache's two targets, and the
// others for context.
func goBenchRows(file string) ([]row, error) {
	b, runs, err := parseGoBench(file)
	if err != nil {
		return nil, err
	}
	rows := []row{{"go bench", "runs per benchmark (± is benchstat's 95% interval of the median)",
		fmt.Sprint(runs), fmt.Sprintf(">= %d (fewer: ± ∞)", minRuns), judge(runs >= minRuns)}}
	if s, ok := b["cache.BenchmarkGetFullID"]; ok {
		rows = append(rows, row{"go bench", "cache get, full ID (10,000 records)", nsAllocs(s), "< 100 ns, 0 allocs",
			judge(s.ns() < 100 && s.median("allocs/op") == 0)})
	}
	if s, ok := b["cache.BenchmarkGetPrefix"]; ok {
		rows = append(rows, row{"go bench", "cache get, 12-char prefix", nsAllocs(s), "< 1 µs", judge(s.ns() < 1000)})
	}
	for _, c := range []struct{ key, figure string }{
		{"cgroup.BenchmarkParsePath/cgroupfs", "cgroup path parse, cgroupfs"},
		{"cgroup.BenchmarkParsePath/systemd", "cgroup path parse, systemd"},
		{"cgroup.BenchmarkParseProcCgroup", "/proc/<pid>/cgroup parse"},
		{"cgroup.BenchmarkProcResolverResolveSelf", "PID to container (read + parse /proc/self/cgroup)"},
		{"enrich.BenchmarkContainerContainerd", "enrich containerd ContainerStatus (verbose)"},
		{"enrich.BenchmarkContainerCRIO", "enrich CRI-O ContainerStatus (verbose)"},
		{"enrich.BenchmarkSandboxContainerd", "enrich containerd PodSandboxStatus (verbose, CNI)"},
		{"httpapi.BenchmarkHandlerGetContainerFullID", "HTTP handler, get by full ID (JSON)"},
		{"httpapi.BenchmarkHandlerGetContainerPrefix", "HTTP handler, get by prefix (JSON)"},
		{"grpcapi.BenchmarkServerGetContainer", "gRPC handler + answer marshalling"},
		{"grpcapi.BenchmarkGetContainerBufconn", "gRPC call in-process (bufconn, client included)"},
	} {
		if s, ok := b[c.key]; ok {
			rows = append(rows, row{"go bench", c.figure, nsAllocs(s), "", info})
		}
	}
	return rows, nil
}

// ns is the median time per operation in nanoseconds.
func (s benchStats) ns() float64 { return s.median("sec/op") * 1e9 }

func (s benchStats) median(unit string) float64 { return s[unit].Center }

// nsAllocs shows the time with its spread, then bytes and allocations
// (their spread is all but zero).
func nsAllocs(s benchStats) string {
	ns := s.ns()
	t := fmt.Sprintf("%.0f ns", ns)
	if ns >= 10000 {
		t = fmt.Sprintf("%.1f µs", ns/1000)
	}
	return fmt.Sprintf("%s ± %s, %.0f B, %.0f allocs", t, s["sec/op"].PctRangeString(), s.median("B/op"), s.median("allocs/op"))
}
