package deploy

import (
	"encoding/json"
	"fmt"
	"slices"
)

// schemaNode is the part of a JSON schema the key-coverage check reads.
type schemaNode struct {
	Type       any                   `json:"type"`
	Ref        string                `json:"$ref"`
	Properties map[string]schemaNode `json:"properties"`
}

func parseSchema(data []byte) (schemaNode, error) {
	var s schemaNode
	err := json.Unmarshal(data, &s)
	return s, err
}

// leaves records every property that is not itself an object with
// properties, by dotted key.
func (s schemaNode) leaves(prefix string, out map[string]schemaNode) {
	for name, p := range s.Properties {
		if len(p.Properties) > 0 {
			p.leaves(prefix+name+".", out)
			continue
		}
		out[prefix+name] = p
	}
}

// accepts says whether the node is, or includes, the JSON type or $ref want.
func (s schemaNode) accepts(want string) bool {
	if s.Ref != "" {
		return s.Ref == want
	}
	switch t := s.Type.(type) {
	case string:
		return t == want
	case []any:
		return slices.Contains(t, any(want))
	}
	return false
}

func (s schemaNode) describe() string {
	if s.Ref != "" {
		return s.Ref
	}
	return fmt.Sprint(s.Type)
}
