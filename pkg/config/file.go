package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileValues is what the YAML file contributes: raw values of known keys,
// where each was written, and the keys that are not allowed.
type fileValues struct {
	path     string
	values   map[string]any // key -> scalar text, []any or map[string]any
	lines    map[string]int
	problems []problem
}

// readFile reads the YAML file at path ("" means none). Unknown, duplicate
// and misplaced keys become problems rather than errors so they are
// reported with everything else. Scalars are kept as the text written, so
// "socket_mode: 0660" stays octal and "timeout: 5" is caught as missing a
// unit instead of being read as 5ns.
func readFile(path string, sets []setting) (fileValues, error) {
	f := fileValues{path: path, values: map[string]any{}, lines: map[string]int{}}
	if path == "" {
		return f, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read config file: %w", err)
	}
	root, err := parseDocument(data)
	if err != nil {
		return f, fmt.Errorf("parse config file %s: %w", path, err)
	}
	if root == nil {
		return f, nil
	}
	if root.Kind != yaml.MappingNode {
		return f, fmt.Errorf("parse config file %s: line %d: the top level must be a mapping of keys", path, root.Line)
	}
	newKeyWalker(&f, sets).mapping(root, "")
	return f, nil
}

// parseDocument returns the root node of the only document in data, or nil
// for an empty file.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, fmt.Errorf("line %d: only one YAML document is allowed", next.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil
	}
	return doc.Content[0], nil
}

// keyWalker checks the file's keys against the key table: known holds
// every key (true) and every section above one (false).
type keyWalker struct {
	file  *fileValues
	known map[string]bool
}

func newKeyWalker(f *fileValues, sets []setting) keyWalker {
	w := keyWalker{file: f, known: map[string]bool{}}
	for _, s := range sets {
		w.known[s.key] = true
		parts := strings.Split(s.key, ".")
		for i := 1; i < len(parts); i++ {
			w.known[strings.Join(parts[:i], ".")] = false
		}
	}
	return w
}

func (w keyWalker) mapping(n *yaml.Node, prefix string) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], resolve(n.Content[i+1])
		key := k.Value
		if prefix != "" {
			key = prefix + "." + key
		}
		leaf, known := w.known[key]
		switch {
		case seen[key]:
			w.problem(key, k.Line, fmt.Sprintf("%s: duplicate key", key))
		case known && leaf:
			w.leaf(key, val)
		case known:
			w.section(key, val)
		default:
			w.problem(key, k.Line, fmt.Sprintf("%s: unknown key%s", key, w.suggest(key)))
		}
		seen[key] = true
	}
}

func (w keyWalker) leaf(key string, val *yaml.Node) {
	if isNull(val) {
		return // "key:" with no value keeps the value from the layer below
	}
	w.file.values[key] = nodeValue(val)
	w.file.lines[key] = val.Line
}

func (w keyWalker) section(key string, val *yaml.Node) {
	switch {
	case isNull(val):
	case val.Kind == yaml.MappingNode:
		w.mapping(val, key)
	default:
		w.problem(key, val.Line, fmt.Sprintf("%s: %s must be a mapping of %s.* keys", key, show(nodeValue(val)), key))
	}
}

func (w keyWalker) problem(key string, line int, text string) {
	text = fmt.Sprintf("%s (%s:%d)", text, w.file.path, line)
	w.file.problems = append(w.file.problems, problem{key: key, text: text, located: true})
}

// suggest names the closest known key when the unknown one looks like a typo.
func (w keyWalker) suggest(key string) string {
	best, bestDist := "", 3 // more than two edits away is not a typo
	for known := range w.known {
		if d := editDistance(key, known); d < bestDist || (d == bestDist && known < best) {
			best, bestDist = known, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s?", best)
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// nodeValue converts a node to what the codecs read: scalars as written,
// sequences as []any, mappings as map[string]any (always an error at a leaf,
// so their content is not kept).
func nodeValue(n *yaml.Node) any {
	n = resolve(n)
	switch n.Kind {
	case yaml.SequenceNode:
		items := make([]any, len(n.Content))
		for i, c := range n.Content {
			items[i] = nodeValue(c)
		}
		return items
	case yaml.MappingNode:
		return map[string]any{} // only ever shown as {...} in a problem
	}
	if isNull(n) {
		return nil
	}
	return n.Value
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
