package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// printRecords prints recs as a table, or doc (the API's answer) as JSON or
// YAML with the API's key names.
func printRecords(w io.Writer, format string, recs []enrich.Record, doc any) error {
	switch format {
	case "json":
		return writeJSON(w, doc)
	case "yaml":
		return writeYAML(w, doc)
	}
	t := newTable(w, format == "wide", false)
	t.header()
	for i := range recs {
		t.row("", &recs[i])
	}
	return t.flush()
}

// table prints records the way kubectl prints resources: uppercase headers,
// columns aligned by text/tabwriter with kubectl's settings, "<none>" for an
// empty cell.
type table struct {
	tw      *tabwriter.Writer
	wide    bool
	events  bool // a first EVENT column
	started bool
}

func newTable(w io.Writer, wide, events bool) *table {
	return &table{tw: tabwriter.NewWriter(w, 6, 4, 3, ' ', 0), wide: wide, events: events}
}

func (t *table) header() {
	if t.started {
		return
	}
	t.started = true
	cols := []string{"NAMESPACE", "POD", "CONTAINER", "ID", "IMAGE", "STATE", "PID", "POD-IP"}
	if t.wide {
		cols = append(cols, "SANDBOX", "RUNTIME", "POD-SOURCE", "CGROUP")
	}
	if t.events {
		cols = append([]string{"EVENT"}, cols...)
	}
	_, _ = fmt.Fprintln(t.tw, strings.Join(cols, "\t")) // errors surface at flush
}

func (t *table) row(event string, rec *enrich.Record) {
	t.header()
	var pod enrich.Pod
	if rec.Pod != nil {
		pod = *rec.Pod
	}
	container, state, pid := rec.Name, rec.State, ""
	if rec.IsPodSandbox {
		container = "(pause)"
	}
	if rec.DeletedAt != nil {
		state = "deleted"
	}
	if rec.PID > 0 {
		pid = strconv.Itoa(rec.PID)
	}
	image := rec.Image.Name
	if image == "" {
		image = rec.Image.Ref
	}
	cells := []string{pod.Namespace, pod.Name, container, shortID(rec.ID), image, state, pid, pod.IP}
	if t.wide {
		cells = append(cells, shortID(pod.SandboxID), rec.Runtime, string(rec.PodSource), rec.CgroupPath)
	}
	if t.events {
		cells = append([]string{event}, cells...)
	}
	for i, c := range cells {
		if c == "" {
			cells[i] = "<none>"
		}
	}
	_, _ = fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

func shortID(id string) string { return id[:min(len(id), 12)] }

func writeJSON(w io.Writer, doc any) error {
	data, err := json.MarshalIndent(doc, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// writeYAML prints doc as YAML with the JSON key names in the JSON order:
// the JSON is parsed as a YAML node tree (JSON is YAML), then restyled from
// flow to block.
func writeYAML(w io.Writer, doc any) error {
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return fmt.Errorf("converting to yaml: %w", err)
	}
	blockStyle(&node)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return fmt.Errorf("converting to yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// blockStyle drops the flow and quoting styles JSON parsing leaves, so the
// encoder picks YAML's plain block style and quotes only where needed.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
