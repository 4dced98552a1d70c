// Command report gathers what `make bench` measured into one table: every
// figure beside its target (issues 7 and 12) and whether it meets it, and
// the real-runtime run's CRI calls per container by RPC.
//
// It reads, from -dir: go-bench.txt (go test -bench output, several
// -count runs, read by golang.org/x/perf/benchfmt; each figure is the
// median with benchstat's ± spread, since this machine is noisy),
// api-<proto>-<clients>.json (api-load),
// scale.json (test/bench/scale) and runtime.json (test/bench/runtime-bench).
// A missing file leaves its rows out and says so. With -markdown it prints
// the table for BENCHMARKS.md.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "bin/bench", "directory holding the results of make bench")
	markdown := flag.Bool("markdown", false, "print a Markdown table")
	flag.Parse()
	var rows []row
	var missing []string
	for _, src := range []struct {
		file string
		read func(string) ([]row, error)
	}{
		{"go-bench.txt", goBenchRows},
		{"api-*.json", apiLoadRows},
		{"scale.json", scaleRows},
		{"runtime.json", runtimeRows},
	} {
		paths, _ := filepath.Glob(filepath.Join(*dir, src.file))
		if len(paths) == 0 {
			missing = append(missing, src.file)
			continue
		}
		r, err := src.read(filepath.Join(*dir, src.file))
		if err != nil {
			return fmt.Errorf("%s: %w", src.file, err)
		}
		rows = append(rows, r...)
	}
	if *markdown {
		printMarkdown(os.Stdout, rows)
	} else {
		printTable(os.Stdout, rows)
	}
	if runtimeJSON := filepath.Join(*dir, "runtime.json"); exists(runtimeJSON) {
		if err := printCalls(os.Stdout, runtimeJSON, *markdown); err != nil {
			return fmt.Errorf("runtime.json: %w", err)
		}
	}
	fmt.Printf("\nmachine: %s\n", machine())
	if len(missing) > 0 {
		fmt.Printf("not measured (no %s in %s)\n", strings.Join(missing, ", "), *dir)
	}
	return nil
}

// row is one figure of the table.
type row struct {
	area, figure, measured, target string
	verdict                        verdict
}

type verdict int

const (
	info verdict = iota // no target: reported for context
	pass
	miss
)

func (v verdict) String() string {
	switch v {
	case pass:
		return "pass"
	case miss:
		return "MISS"
	}
	return ""
}

func judge(ok bool) verdict {
	if ok {
		return pass
	}
	return miss
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AREA\tFIGURE\tMEASURED\tTARGET\tRESULT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.area, r.figure, r.measured, dash(r.target), r.verdict)
	}
	_ = tw.Flush()
}

func printMarkdown(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| area | figure | measured | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range rows {
		v := r.verdict.String()
		if r.verdict == miss {
			v = "**miss**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.area, r.figure, r.measured, dash(r.target), v)
	}
}

func exists(file string) bool {
	_, err := os.Stat(file)
	return err == nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
