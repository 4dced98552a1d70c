package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/criclient"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

func TestLookup_MalformedAnswersAreCountedNotCachedAndNeverPanic(t *testing.T) {
	tests := []struct {
		name        string
		breakIt     func(rt *fakecri.Runtime, sandboxID, containerID string)
		wantReason  string // lookup_failures_total{stage="parse"}
		wantRecord  bool
		wantSource  enrich.PodSource
		wantSandbox bool // the sandbox record is cached
	}{
		{
			name:       "container info is not JSON",
			breakIt:    func(rt *fakecri.Runtime, _, id string) { rt.SetInfo(id, `{"sandboxID": "abc", "pid": `) },
			wantReason: enrich.ReasonBadInfoJSON,
		},
		{
			name:       "container info has the wrong shape",
			breakIt:    func(rt *fakecri.Runtime, _, id string) { rt.SetInfo(id, `["sandboxID", 42]`) },
			wantReason: enrich.ReasonBadInfoJSON,
		},
		{
			name:       "container info field of the wrong type",
			breakIt:    func(rt *fakecri.Runtime, _, id string) { rt.SetInfo(id, `{"pid": "not a number"}`) },
			wantReason: enrich.ReasonBadInfoJSON,
		},
		{
			name: "container status missing",
			breakIt: func(rt *fakecri.Runtime, _, id string) {
				rt.EditContainerStatus(id, func(r *runtimeapi.ContainerStatusResponse) { r.Status = nil })
			},
			wantReason: enrich.ReasonMissingStatus,
		},
		{
			name: "container status answers a short ID",
			breakIt: func(rt *fakecri.Runtime, _, id string) {
				rt.EditContainerStatus(id, func(r *runtimeapi.ContainerStatusResponse) { r.Status.Id = id[:12] })
			},
			wantReason: enrich.ReasonBadID,
		},
		{
			name:        "sandbox info is not JSON: the container falls back to its labels",
			breakIt:     func(rt *fakecri.Runtime, sb, _ string) { rt.SetInfo(sb, `{"pid": 1, "cniResult": {`) },
			wantReason:  enrich.ReasonBadInfoJSON,
			wantRecord:  true,
			wantSource:  enrich.PodSourceContainerLabels,
			wantSandbox: false,
		},
		{
			name: "sandbox CNI result unreadable: the record keeps the rest",
			breakIt: func(rt *fakecri.Runtime, sb, _ string) {
				rt.SetInfo(sb, `{"pid": 1, "cniResult": {"Interfaces": {"eth0": "not an object"}}}`)
				rt.EditSandboxStatus(sb, func(r *runtimeapi.PodSandboxStatusResponse) { r.Status.Network = nil })
			},
			wantReason:  enrich.ReasonBadCNIResult,
			wantRecord:  true,
			wantSource:  enrich.PodSourceSandboxStatus,
			wantSandbox: true,
		},
		{
			name: "optional status fields missing",
			breakIt: func(rt *fakecri.Runtime, _, id string) {
				rt.EditContainerStatus(id, func(r *runtimeapi.ContainerStatusResponse) {
					st := r.Status
					st.Metadata, st.Image, st.Labels, st.Annotations, st.Mounts, st.Resources = nil, nil, nil, nil, nil, nil
					st.CreatedAt, st.StartedAt, st.ImageRef, st.ImageId, st.LogPath = 0, 0, "", "", ""
				})
			},
			wantRecord:  true,
			wantSource:  enrich.PodSourceSandboxStatus,
			wantSandbox: true,
		},
		{
			// A non-verbose answer names no sandbox: the pod comes from the
			// container's kubelet labels.
			name:       "verbose info absent",
			breakIt:    func(rt *fakecri.Runtime, _, id string) { rt.SetInfo(id, "") },
			wantRecord: true,
			wantSource: enrich.PodSourceContainerLabels,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, sb, ids := onePod("app")
			tt.breakIt(rt, sb, ids[0])
			s := newStack(t, rt, stackOptions{})
			rec, err := s.engine.Lookup(s.lookupCtx(), ids[0])

			if tt.wantReason != "" {
				checkMetric(t, s, 1, failuresTotal, "stage", "parse", "reason", tt.wantReason)
			}
			checkMetric(t, s, 0, retriesTotal) // the same answer would come back
			if got := rt.CallsFor(fakecri.RPCContainerStatus, ids[0]); got != 1 {
				t.Errorf("ContainerStatus calls = %d, want 1", got)
			}
			if _, ok := s.cache.GetSandbox(sb); ok != tt.wantSandbox {
				t.Errorf("sandbox cached = %v, want %v", ok, tt.wantSandbox)
			}
			if !tt.wantRecord {
				if err == nil {
					t.Fatalf("Lookup of a malformed answer succeeded: %+v", rec)
				}
				if s.cache.Len() != 0 {
					t.Errorf("cache holds %d records after a malformed answer, want 0", s.cache.Len())
				}
				checkMetric(t, s, 1, lookupsTotal, "result", "error")
				return
			}
			if err != nil {
				t.Fatalf("Lookup = %v", err)
			}
			if rec.ID != ids[0] || rec.Name != "app" || rec.PodSource != tt.wantSource || rec.Pod == nil || rec.Pod.Name != "web-0" {
				t.Errorf("record %q (%s) pod from %s = %+v", rec.Name, rec.ID, rec.PodSource, rec.Pod)
			}
		})
	}
}

func TestLookup_TrimsHugeLabelMapsToTheExportCaps(t *testing.T) {
	const (
		labels   = 5000
		bigOnes  = 600 // 10 KB values: 600 of them, twice (status and info), stay under the client's 16 MiB cap
		bigValue = 10 << 10
	)
	rt := fakecri.New()
	sb, _ := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop"})
	id := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "app", Labels: hugeLabels(labels, bigOnes, bigValue)})
	rt.StartContainer(id)
	s := newStack(t, rt, stackOptions{})

	rec, err := s.engine.Lookup(s.lookupCtx(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Labels) > enrich.DefaultMaxLabels {
		t.Errorf("record has %d labels, want at most %d", len(rec.Labels), enrich.DefaultMaxLabels)
	}
	for k, v := range rec.Labels {
		if len(v) > enrich.DefaultMaxValueLen {
			t.Errorf("label %s is %d bytes, want at most %d", k, len(v), enrich.DefaultMaxValueLen)
		}
	}
	if rec.Pod == nil || rec.Pod.Name != "web-0" || rec.PodSource != enrich.PodSourceSandboxStatus {
		t.Errorf("trimming lost the pod: %+v from %s", rec.Pod, rec.PodSource)
	}
	if rec.Trimmed == 0 {
		t.Error("record says nothing was trimmed")
	}
	checkMetric(t, s, float64(rec.Trimmed), "cri_enricherd_trimmed_values_total")
	t.Logf("%d labels (%d of %d bytes) trimmed to %d, %d values dropped or cut", labels+4, bigOnes, bigValue, len(rec.Labels), rec.Trimmed)
}

// TestLookup_AnswerBeyondTheClientsMessageCapIsNotRetried sends what the
// trimming test cannot: 5000 labels of 10 KB, 50 MB twice over, far beyond
// the client's 16 MiB receive cap. gRPC refuses it with ResourceExhausted,
// the code a throttling runtime answers too; but the same answer would come
// back, so the lookup must fail at once (one call, no retry), cache
// nothing, and say why in the metrics.
func TestLookup_AnswerBeyondTheClientsMessageCapIsNotRetried(t *testing.T) {
	rt := fakecri.New()
	sb, _ := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop"})
	id := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "app", Labels: hugeLabels(5000, 5000, 10<<10)})
	s := newStack(t, rt, stackOptions{timeout: 30 * time.Second}) // marshalling 100 MB under -race is slow

	_, err := s.engine.Lookup(s.ctx, id)
	if criclient.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Lookup = %v, want ResourceExhausted", err)
	}
	if got := rt.CallsFor(fakecri.RPCContainerStatus, id); got != 1 {
		t.Errorf("ContainerStatus calls = %d, want 1: an answer over the cap is no transient failure", got)
	}
	if s.cache.Len() != 0 {
		t.Errorf("cache holds %d records", s.cache.Len())
	}
	checkMetric(t, s, 0, retriesTotal)
	checkMetric(t, s, 1, failuresTotal, "stage", "container_status", "reason", "resource_exhausted")
	checkMetric(t, s, 1, requestsTotal, "rpc", "ContainerStatus", "code", "ResourceExhausted")
	checkMetric(t, s, 1, lookupsTotal, "result", "error")
}

// hugeLabels returns n labels; the first big of them (in key order) hold
// values of size bytes.
func hugeLabels(n, big, size int) map[string]string {
	l := make(map[string]string, n)
	value := strings.Repeat("v", size)
	for i := range n {
		if i < big {
			l[fmt.Sprintf("example.com/big-%05d", i)] = value
			continue
		}
		l[fmt.Sprintf("example.com/small-%05d", i)] = "x"
	}
	return l
}
