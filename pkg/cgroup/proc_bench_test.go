package cgroup

import "testing"

// hybridProcCgroup is /proc/<pid>/cgroup of a container process on a hybrid
// host like this one: one line per v1 hierarchy and the v2 line.
const hybridProcCgroup = `12:pids:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
11:freezer:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
10:memory:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
9:cpu,cpuacct:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
8:blkio:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
7:devices:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
1:name=systemd:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
0::/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000000000009/f8bb76954a39870524321c7d6c503e259694f8a6f31a8c3390c846af7c32e485
`

func BenchmarkParseProcCgroup(b *testing.B) {
	data := []byte(hybridProcCgroup)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProcCgroup(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcResolverResolveSelf(b *testing.B) {
	r := NewProcResolver("/proc")
	b.ReportAllocs()
	for b.Loop() {
		// The benchmark process is a host process: this measures the read
		// and parse of a real /proc/<pid>/cgroup, ending in ErrNoContainer.
		_, _, _ = r.Resolve(1)
	}
}
