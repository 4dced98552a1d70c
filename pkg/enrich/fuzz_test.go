package enrich

import (
	"encoding/json"
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// fuzzSeeds are info strings that poke at the decoder's edges.
var fuzzSeeds = []string{
	"", "null", "{}", "[]", `"x"`, "{", `{"pid":-1}`, `{"pid":1e99}`,
	`{"runtimeSpec":null}`, `{"runtimeSpec":{"process":{"env":5}}}`,
	`{"runtimeSpec":{"linux":{"cgroupsPath":"a-b-.slice:p:n"}}}`,
	`{"runtimeSpec":{"linux":{"resources":{"cpu":{"shares":18446744073709551615}}}}}`,
	`{"cniResult":{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"::ffff:10.0.0.1"}],"Sandbox":"x"}}}}`,
	`{"runtimeSpec":{"annotations":{"io.kubernetes.cri-o.CNIResult":"{\"ips\":[{\"address\":\"1.2.3.4/99\"}]}"}}}`,
}

func FuzzContainerInfo(f *testing.F) {
	for _, fixture := range containerFixtures {
		f.Add(loadContainer(f, fixture).GetInfo()["info"])
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	base := loadContainer(f, "containerd-1.6/container-status-verbose-0.json").GetStatus()
	opts := Options{ExportEnv: true, ExportAnnotations: true, MaxLabels: 3, MaxValueLen: 8}
	f.Fuzz(func(t *testing.T, info string) {
		resp := &runtimeapi.ContainerStatusResponse{Status: base, Info: map[string]string{"info": info}}
		res, err := Container(resp, "containerd", opts)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason != ReasonBadInfoJSON {
				t.Fatalf("Container error = %v, want bad_info_json", err)
			}
			return
		}
		if res.Record.ID != base.GetId() {
			t.Fatalf("ID = %q", res.Record.ID)
		}
		if res.SandboxID != "" && !id.IsFull(res.SandboxID) {
			t.Fatalf("SandboxID = %q is not a full id", res.SandboxID)
		}
		if _, err := json.Marshal(res.Record); err != nil {
			t.Fatalf("marshal record: %v", err)
		}
	})
}

func FuzzSandboxInfo(f *testing.F) {
	for _, fixture := range sandboxFixtures {
		f.Add(loadSandbox(f, fixture).GetInfo()["info"])
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	base := loadSandbox(f, "containerd-1.6/sandbox-status-verbose-2.json").GetStatus()
	opts := Options{ExportAnnotations: true, MaxLabels: 1, MaxValueLen: 4}
	f.Fuzz(func(t *testing.T, info string) {
		resp := &runtimeapi.PodSandboxStatusResponse{Status: base, Info: map[string]string{"info": info}}
		rec, err := Sandbox(resp, "containerd", opts)
		var pe *ParseError
		switch {
		case err == nil:
		case errors.As(err, &pe) && pe.Reason == ReasonBadInfoJSON:
			return
		case errors.As(err, &pe) && pe.Reason == ReasonBadCNIResult:
		default:
			t.Fatalf("Sandbox error = %v", err)
		}
		if rec.ID != base.GetId() || rec.Pod == nil || rec.Pod.SandboxID != rec.ID {
			t.Fatalf("record identity broken: id %q pod %+v", rec.ID, rec.Pod)
		}
		if c := rec.Pod.CNIResult; c != "" && !json.Valid([]byte(c)) {
			t.Fatalf("CNIResult is not JSON: %q", c)
		}
		if _, err := json.Marshal(rec); err != nil {
			t.Fatalf("marshal record: %v", err)
		}
	})
}
