package grpcapi

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cri-enricherd/cri-enricherd/internal/recordfill"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// keyPaths lists every object key of a JSON document as a dotted path.
// The contents of labels and annotations are data, not schema.
func keyPaths(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				out = append(out, prefix+k)
				if k != "labels" && k != "annotations" {
					walk(prefix+k+".", child)
				}
			}
		case []any:
			for _, child := range x {
				walk(prefix+"[].", child)
			}
		}
	}
	walk("", v)
	sort.Strings(out)
	return slices.Compact(out)
}

func TestSchema_ProtoJSONAndRecordJSONHaveTheSameFieldNames(t *testing.T) {
	rec := recordfill.Record(func(path string) string { return path }) // omitempty hides no key
	ev := watch.Event{Type: watch.Updated, Revision: 7, Record: &rec}
	pods := []query.PodRecords{{Pod: rec.Pod, Sandbox: &rec, Containers: []enrich.Record{rec}}}
	tests := []struct {
		name  string
		http  any
		proto proto.Message
	}{
		{"record", rec, recordView(&rec)},
		{"watch event", ev, eventView(ev)},
		{"pod", pods[0], podsToProto(pods)[0]},
	}
	marshal := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fromHTTP, err := json.Marshal(tt.http)
			if err != nil {
				t.Fatal(err)
			}
			fromProto, err := marshal.Marshal(tt.proto)
			if err != nil {
				t.Fatal(err)
			}
			h, p := keyPaths(t, fromHTTP), keyPaths(t, fromProto)
			if !slices.Equal(h, p) {
				t.Errorf("field names differ\nonly in JSON:  %v\nonly in proto: %v", minus(h, p), minus(p, h))
			}
		})
	}
}

func TestSchema_EventTypesAreTheProtoEnumNames(t *testing.T) {
	for typ, enum := range eventTypes {
		if string(typ) != enum.String() {
			t.Errorf("event type %q is %q in the proto", typ, enum.String())
		}
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
