package harness

import (
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The proxy counts a call under the ID it names: a status call's container
// or sandbox, a List's ID filter, "" for a List of the whole node.
func TestCRIProxy_RequestIDNamesTheIDACallIsAbout(t *testing.T) {
	tests := []struct {
		rpc  string
		msg  proto.Message
		want string
		ok   bool
	}{
		{"ContainerStatus", &runtimeapi.ContainerStatusRequest{ContainerId: "c1", Verbose: true}, "c1", true},
		{"PodSandboxStatus", &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "s1"}, "s1", true},
		{"ListContainers", &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: "c2"}}, "c2", true},
		{"ListPodSandbox", &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{Id: "s2"}}, "s2", true},
		{"ListPodSandbox", &runtimeapi.ListPodSandboxRequest{}, "", true},
		{"Version", &runtimeapi.VersionRequest{}, "", false},
	}
	for _, tt := range tests {
		b, err := proto.Marshal(tt.msg)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := requestID(tt.rpc, b); got != tt.want || ok != tt.ok {
			t.Errorf("requestID(%s, %v) = %q, %v; want %q, %v", tt.rpc, tt.msg, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := requestID("ContainerStatus", []byte{0xff}); ok {
		t.Error("requestID accepted a malformed request")
	}
}
