package enrich

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// loadProto reads a protojson fixture from testdata into m.
func loadProto(tb testing.TB, rel string, m proto.Message) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", rel))
	if err != nil {
		tb.Fatalf("read fixture: %v", err)
	}
	if err := protojson.Unmarshal(b, m); err != nil {
		tb.Fatalf("decode fixture %s: %v", rel, err)
	}
}

func loadContainer(tb testing.TB, rel string) *runtimeapi.ContainerStatusResponse {
	tb.Helper()
	resp := &runtimeapi.ContainerStatusResponse{}
	loadProto(tb, rel, resp)
	return resp
}

func loadSandbox(tb testing.TB, rel string) *runtimeapi.PodSandboxStatusResponse {
	tb.Helper()
	resp := &runtimeapi.PodSandboxStatusResponse{}
	loadProto(tb, rel, resp)
	return resp
}

// fixtureRuntime returns the runtime name the fixture directory's Version
// answer reports, which is what the engine passes to enrichment.
func fixtureRuntime(tb testing.TB, dir string) string {
	tb.Helper()
	v := &runtimeapi.VersionResponse{}
	loadProto(tb, filepath.Join(dir, "version.json"), v)
	return v.GetRuntimeName()
}

// checkField is the one assertion style of this package's tests.
func checkField(t *testing.T, field string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", field, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// Fixture IDs and values, read from the files under testdata.
const (
	cd16Container0 = "5291ed801a00ba65b3e1f1e6a3e8da45bf576f7905747823e09e8600a04f4af9"
	cd16Sandbox0   = "6733a7eef577d6879288a30c2495de4d21e07fca181763849e376be62771b1d8"
	cd16Container1 = "396c8681f7fe5e617088cd265ad4643a8af79c1253f44682d6ef92c6772c765a"
	cd16Sandbox1   = "19b898900261af0fc59e065e8aa7b835abc81463cbbbfa0a0fc4fc334e2dae6a"
	cd16Sandbox2   = "74d45129332cc1c1d6c9117aa4a670dea37bb13ff994278e4d57d27010c84f58"
	cd24Container0 = "f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485"
	cd24Sandbox0   = "227ce92b8b2542c3f36fc2a3ae212192723a3aa7ed677d0b27ecc36fed97b3af"
	crioContainer0 = "85b709da72730f53f0695f537603d58e43b8ffcc9c3de3943b89194d89135420"
	crioSandbox0   = "654b84a85c446f4c4bdf4ac58307c1150d570a424720bbc51c039bd883ede978"
	busyboxID      = "sha256:65bc11e70a5d7934550e12c6cde0a2eace6f2ce54aea10f23999cdd0bbd8d566"
	busyboxName    = "docker.io/library/busybox:latest"
)
