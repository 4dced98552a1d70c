package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cri-enricherd/cri-enricherd/test/internal/runtimeresult"
)

func printResults(w io.Writer, rs []result) {
	printLatencies(w, rs)
	fmt.Fprintln(w)
	printTable(w, runtimeresult.CallsHeader, runtimeresult.CallsRows(rs))
	fmt.Fprintln(w, "(calls per container; status calls = ContainerStatus + PodSandboxStatus, with their count)")
	fmt.Fprintln(w)
	var checks [][]string
	for _, r := range rs {
		for _, c := range r.Checks {
			checks = append(checks, []string{r.Runtime, c.Figure, c.Measured, c.Target, c.Verdict()})
		}
	}
	printTable(w, []string{"runtime", "figure", "measured", "target", "result"}, checks)
}

func printLatencies(w io.Writer, rs []result) {
	var rows [][]string
	for _, r := range rs {
		for _, f := range []struct {
			what string
			s    summary
		}{
			{"cgroup appears -> container served", r.ServedContainer},
			{"  of which the pod was already known", r.ServedKnownPod},
			{"cgroup appears -> container complete", r.CompleteContainer},
			{"StartContainer returns -> container complete", r.CompleteAfter},
			{"cgroup appears -> sandbox served", r.ServedSandbox},
			{"RunPodSandbox", r.RunPodSandbox},
			{"raw ContainerStatus(verbose)", r.RawContainer},
			{"raw PodSandboxStatus(verbose)", r.RawSandbox},
			{"reacting peer: cgroup appears -> CS answered", r.PeerFirst},
			{"reacting peer: cgroup appears -> CS+PSS answered", r.PeerServed},
		} {
			rows = append(rows, []string{r.Runtime, r.EventSource, f.what, fmt.Sprint(f.s.N),
				fmt.Sprintf("%.2f", f.s.P50), fmt.Sprintf("%.2f", f.s.P99), fmt.Sprintf("%.2f", f.s.Max)})
		}
	}
	printTable(w, []string{"runtime", "source", "what", "n", "p50 ms", "p99 ms", "max ms"}, rows)
}

func printTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
}
