package grpcapi

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// fullRecord sets every field, so that omitempty hides no key.
func fullRecord() enrich.Record {
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	uid := int64(1000)
	return enrich.Record{
		ID: idA, ShortID: idA[:12], Name: "app", Attempt: 1, State: "running", Runtime: "containerd", Node: "node-a",
		CreatedAt: &at, StartedAt: &at, FinishedAt: &at, DeletedAt: &at,
		Image: enrich.Image{Name: "nginx:1", Resolved: "docker.io/library/nginx:1", Ref: "docker.io/library/nginx@sha256:00", ID: "sha256:11"},
		PID:   4242, Privileged: true, UserUID: &uid,
		Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"}, Env: []string{"E=1"},
		LogPath: "/var/log/pods/x.log", CgroupPath: "/kubepods/x",
		Mounts:   []enrich.Mount{{HostPath: "/h", ContainerPath: "/c", ReadOnly: true, Propagation: "rprivate"}},
		CgroupID: 4026531835,
		Resources: enrich.Resources{CPUShares: 2, CPUQuota: 3, CPUPeriod: 4, CpusetCPUs: "0-1", CpusetMems: "0",
			MemoryLimitInBytes: 5, OOMScoreAdj: -997},
		IsPodSandbox: true,
		Pod: &enrich.Pod{SandboxID: idC, Name: "web-0", Namespace: "shop", UID: "u1", Attempt: 2, State: "ready",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"x": "y"}, IP: "10.0.0.1",
			AdditionalIPs: []string{"fd00::1"}, CNIResult: "{}", HostNetwork: true, HostPID: true, HostIPC: true,
			RuntimeHandler: "runc", CreatedAt: &at},
		PodSource: enrich.PodSourceSandboxStatus,
		Trimmed:   3,
	}
}

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
	rec := fullRecord()
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
