package grpcapi

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cri-enricherd/cri-enricherd/internal/recordfill"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// numbersAsText turns every number of a decoded JSON document into its
// text: protojson writes 64-bit integers as strings, encoding/json as
// numbers.
func numbersAsText(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			x[k] = numbersAsText(child)
		}
	case []any:
		for i, child := range x {
			x[i] = numbersAsText(child)
		}
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return v
}

func decodeJSON(t *testing.T, doc []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	return numbersAsText(v)
}

// TestViews_CarryEveryFieldsValue fills every field of a record by
// reflection, each with its own value, and checks that the gRPC message
// holds the same values as the HTTP API's JSON: a field added to the record
// and not to the conversion, or two fields swapped, fails.
func TestViews_CarryEveryFieldsValue(t *testing.T) {
	rec := recordfill.Record(func(path string) string { return path + "-é" })
	ev := watch.Event{Type: watch.Updated, Revision: 7, Record: &rec}
	marshal := protojson.MarshalOptions{UseProtoNames: true}
	for _, tc := range []struct {
		name string
		http any
		grpc func() ([]byte, error)
	}{
		{"record", &rec, func() ([]byte, error) { return marshal.Marshal(recordView(&rec)) }},
		{"watch event", ev, func() ([]byte, error) { return marshal.Marshal(eventView(ev)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fromHTTP, err := json.Marshal(tc.http)
			if err != nil {
				t.Fatal(err)
			}
			fromGRPC, err := tc.grpc()
			if err != nil {
				t.Fatal(err)
			}
			if h, g := decodeJSON(t, fromHTTP), decodeJSON(t, fromGRPC); !reflect.DeepEqual(h, g) {
				t.Errorf("values differ\nHTTP JSON: %s\ngRPC:      %s", fromHTTP, fromGRPC)
			}
		})
	}
}
