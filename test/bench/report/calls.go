package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cri-enricherd/cri-enricherd/test/internal/runtimeresult"
)

// printCalls prints, from runtime.json, the CRI calls per container each
// runtime received, by RPC, beside the per-container enricher's.
func printCalls(w io.Writer, file string, markdown bool) error {
	rs, err := readRuntime(file)
	if err != nil {
		return err
	}
	sep, head, tail := "\t", "", ""
	if markdown {
		sep, head, tail = " | ", "| ", " |"
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		defer func() { _ = tw.Flush() }()
		w = tw
	}
	line := func(cells []string) { fmt.Fprintln(w, head+strings.Join(cells, sep)+tail) }
	fmt.Fprintln(w)
	line(runtimeresult.CallsHeader)
	if markdown {
		line(slices.Repeat([]string{"---"}, len(runtimeresult.CallsHeader)))
	}
	for _, row := range runtimeresult.CallsRows(rs) {
		line(row)
	}
	if markdown {
		fmt.Fprintln(w) // ends the Markdown table
	}
	fmt.Fprintln(w, "(calls per container; status calls = ContainerStatus + PodSandboxStatus, with their count)")
	return nil
}
