package main

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// benchStats are the medians of one benchmark's runs, by unit (ns/op,
// B/op, allocs/op, ...).
type benchStats map[string]float64

// parseGoBench reads go test -bench output and returns the median of each
// unit per benchmark, keyed "pkg-base.BenchmarkName" without the -GOMAXPROCS
// suffix (pkg-base is the last element of the package path).
func parseGoBench(file string) (map[string]benchStats, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	samples := map[string]map[string][]float64{}
	pkg := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = path.Base(strings.TrimSpace(p))
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := pkg + "." + trimProcs(fields[0])
		if samples[name] == nil {
			samples[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				samples[name][fields[i+1]] = append(samples[name][fields[i+1]], v)
			}
		}
	}
	out := map[string]benchStats{}
	for name, units := range samples {
		out[name] = benchStats{}
		for unit, vs := range units {
			out[name][unit] = median(vs)
		}
	}
	return out, sc.Err()
}

// trimProcs drops the -N GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// goBenchRows are the micro-benchmarks: the cache's two targets, and the
// others for context.
func goBenchRows(file string) ([]row, error) {
	b, err := parseGoBench(file)
	if err != nil {
		return nil, err
	}
	var rows []row
	if s, ok := b["cache.BenchmarkGetFullID"]; ok {
		rows = append(rows, row{"go bench", "cache get, full ID (10,000 records)", nsAllocs(s), "< 100 ns, 0 allocs",
			judge(s["ns/op"] < 100 && s["allocs/op"] == 0)})
	}
	if s, ok := b["cache.BenchmarkGetPrefix"]; ok {
		rows = append(rows, row{"go bench", "cache get, 12-char prefix", nsAllocs(s), "< 1 µs", judge(s["ns/op"] < 1000)})
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

func nsAllocs(s benchStats) string {
	ns := s["ns/op"]
	t := fmt.Sprintf("%.0f ns", ns)
	if ns >= 10000 {
		t = fmt.Sprintf("%.1f µs", ns/1000)
	}
	return fmt.Sprintf("%s, %.0f B, %.0f allocs", t, s["B/op"], s["allocs/op"])
}
