package enrich

import "testing"

func benchmarkContainer(b *testing.B, fixture, runtime string) {
	resp := loadContainer(b, fixture)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Container(resp, runtime, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkContainerContainerd(b *testing.B) {
	benchmarkContainer(b, "containerd-2.4/container-status-verbose-0.json", "containerd")
}

// BenchmarkContainerCRIO is the heavy case: CRI-O's spec carries a full
// seccomp profile that the decoder must skip.
func BenchmarkContainerCRIO(b *testing.B) {
	benchmarkContainer(b, "crio-1.36/container-status-verbose-0.json", "cri-o")
}

// BenchmarkSandboxContainerd uses the pod with a real CNI result.
func BenchmarkSandboxContainerd(b *testing.B) {
	resp := loadSandbox(b, "containerd-1.6/sandbox-status-verbose-2.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sandbox(resp, "containerd", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
