package cgroup

import (
	"strings"
	"testing"

	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

const (
	testID      = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testNodeID  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	testUID     = "5b4f5c9e-1a2b-4c3d-9e8f-0123456789ab"
	testUIDU    = "5b4f5c9e_1a2b_4c3d_9e8f_0123456789ab"
	testStatic  = "d3b2c2a1e0f9d8c7b6a5948372615049" // static pod: config hash as UID
	systemdPods = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + testUIDU + ".slice"
)

// pathCase is one cgroup path and what ParsePath must say about it.
type pathCase struct {
	name          string
	path          string
	wantOK        bool
	wantRef       Ref
	wantContainer string // container-level path; "" means the path itself
}

func acceptedPaths() []pathCase {
	ctrd := Ref{ContainerID: testID, PodUID: testUID, Runtime: RuntimeContainerd}
	bare := Ref{ContainerID: testID, PodUID: testUID}
	crio := Ref{ContainerID: testID, PodUID: testUID, Runtime: RuntimeCRIO}
	return []pathCase{
		{name: "containerd cgroupfs burstable", path: "/kubepods/burstable/pod" + testUID + "/" + testID, wantRef: bare},
		{name: "containerd cgroupfs guaranteed", path: "/kubepods/pod" + testUID + "/" + testID, wantRef: bare},
		{name: "containerd cgroupfs besteffort", path: "/kubepods/besteffort/pod" + testUID + "/" + testID, wantRef: bare},
		{name: "containerd systemd burstable", path: systemdPods + "/cri-containerd-" + testID + ".scope", wantRef: ctrd},
		{
			name:    "containerd systemd guaranteed",
			path:    "/kubepods.slice/kubepods-pod" + testUIDU + ".slice/cri-containerd-" + testID + ".scope",
			wantRef: ctrd,
		},
		{
			name:    "cri-o systemd besteffort",
			path:    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDU + ".slice/crio-" + testID + ".scope",
			wantRef: crio,
		},
		{name: "cri-o cgroupfs", path: "/kubepods/besteffort/pod" + testUID + "/crio-" + testID, wantRef: crio},
		{
			name:    "cri-dockerd systemd",
			path:    systemdPods + "/docker-" + testID + ".scope",
			wantRef: Ref{ContainerID: testID, PodUID: testUID, Runtime: RuntimeDocker},
		},
		{name: "podman", path: "/machine.slice/libpod-" + testID + ".scope", wantRef: Ref{ContainerID: testID, Runtime: RuntimePodman}},
		{name: "nerdctl", path: "/system.slice/nerdctl-" + testID + ".scope", wantRef: Ref{ContainerID: testID, Runtime: RuntimeNerdctl}},
		{name: "docker cgroupfs without pod", path: "/docker/" + testID, wantRef: Ref{ContainerID: testID}},
		{
			name:    "kubepods below the containerd service",
			path:    "/system.slice/containerd.service/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDU + ".slice/cri-containerd-" + testID + ".scope",
			wantRef: ctrd,
		},
		{
			name:    "kind node in docker cgroupfs",
			path:    "/docker/" + testNodeID + "/kubepods/burstable/pod" + testUID + "/" + testID,
			wantRef: bare,
		},
		{
			name: "kind node in docker systemd",
			path: "/system.slice/docker-" + testNodeID + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/" +
				"kubelet-kubepods-burstable-pod" + testUIDU + ".slice/cri-containerd-" + testID + ".scope",
			wantRef: ctrd,
		},
		{
			name:    "static pod uid",
			path:    "/kubepods/burstable/pod" + testStatic + "/" + testID,
			wantRef: Ref{ContainerID: testID, PodUID: testStatic},
		},
		{
			name:    "parent not a pod",
			path:    "/kubepods/burstable/podnotauid/" + testID,
			wantRef: Ref{ContainerID: testID},
		},
		{name: "relative path", path: "kubepods/pod" + testUID + "/" + testID, wantRef: bare},
		{
			name:          "trailing slash",
			path:          "/kubepods/pod" + testUID + "/" + testID + "/",
			wantRef:       bare,
			wantContainer: "/kubepods/pod" + testUID + "/" + testID,
		},
		{
			name:          "systemd sub-cgroup",
			path:          systemdPods + "/cri-containerd-" + testID + ".scope/init.scope",
			wantRef:       ctrd,
			wantContainer: systemdPods + "/cri-containerd-" + testID + ".scope",
		},
		{
			name:          "cgroupfs nested sub-cgroups",
			path:          "/kubepods/pod" + testUID + "/" + testID + "/sub/deeper",
			wantRef:       bare,
			wantContainer: "/kubepods/pod" + testUID + "/" + testID,
		},
		{
			name:          "cri-o container sub-cgroup",
			path:          "/kubepods/besteffort/pod" + testUID + "/crio-" + testID + "/container",
			wantRef:       crio,
			wantContainer: "/kubepods/besteffort/pod" + testUID + "/crio-" + testID,
		},
	}
}

func rejectedPaths() []pathCase {
	return []pathCase{
		{name: "empty", path: ""},
		{name: "root", path: "/"},
		{name: "cgroupfs pod level", path: "/kubepods/burstable/pod" + testUID},
		{name: "systemd pod level", path: systemdPods},
		{name: "kubepods root", path: "/kubepods.slice"},
		{name: "systemd service", path: "/system.slice/foo.service"},
		{name: "cri-o conmon", path: systemdPods + "/crio-conmon-" + testID + ".scope"},
		{name: "podman conmon", path: "/machine.slice/libpod-conmon-" + testID + ".scope"},
		{name: "uppercase id", path: "/kubepods/pod" + testUID + "/" + strings.ToUpper(testID)},
		{name: "63 hex", path: "/kubepods/pod" + testUID + "/" + testID[1:]},
		{name: "65 hex", path: "/kubepods/pod" + testUID + "/" + testID + "0"},
		{name: "short prefixed id", path: systemdPods + "/cri-containerd-" + testID[1:] + ".scope"},
		{name: "bare id with scope suffix", path: "/machine.slice/" + testID + ".scope"},
		{name: "unknown prefix", path: "/system.slice/foo-" + testID + ".scope"},
		{name: "prefix without dash", path: "/system.slice/crio" + testID + ".scope"},
		{name: "service suffix", path: "/system.slice/docker-" + testID + ".service"},
		{name: "double scope suffix", path: "/system.slice/docker-" + testID + ".scope.scope"},
		{name: "id with suffix", path: "/kubepods/pod" + testUID + "/" + testID + "-x"},
		{name: "32 hex process api cgroup", path: "/process_api/a5ee126123342c6d04a9445e1a05ef54"},
	}
}

func TestParsePath(t *testing.T) {
	cases := append(acceptedPaths(), rejectedPaths()...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.wantOK = tc.wantRef.ContainerID != ""
			ref, ok := ParsePath(tc.path)
			if ok != tc.wantOK || ref != tc.wantRef {
				t.Errorf("ParsePath(%q) = %+v, %v; want %+v, %v", tc.path, ref, ok, tc.wantRef, tc.wantOK)
			}
		})
	}
}

func TestContainerPath_CutsSubCgroupsBackToTheContainer(t *testing.T) {
	for _, tc := range acceptedPaths() {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.wantContainer
			if want == "" {
				want = tc.path
			}
			got, _, ok := ContainerPath(tc.path)
			if !ok || got != want {
				t.Errorf("ContainerPath(%q) = %q, %v; want %q", tc.path, got, ok, want)
			}
		})
	}
}

func TestExpandSystemdPath(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{
			name: "containerd burstable",
			in:   "kubepods-burstable-pod" + testUIDU + ".slice:cri-containerd:" + testID,
			want: systemdPods + "/cri-containerd-" + testID + ".scope",
		},
		{
			name: "cri-o besteffort",
			in:   "kubepods-besteffort-pod" + testUIDU + ".slice:crio:" + testID,
			want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + testUIDU + ".slice/crio-" + testID + ".scope",
		},
		{
			name: "guaranteed",
			in:   "kubepods-pod" + testUIDU + ".slice:cri-containerd:" + testID,
			want: "/kubepods.slice/kubepods-pod" + testUIDU + ".slice/cri-containerd-" + testID + ".scope",
		},
		{name: "top-level slice", in: "machine.slice:libpod:" + testID, want: "/machine.slice/libpod-" + testID + ".scope"},
		{name: "root slice", in: "-.slice:docker:" + testID, want: "/docker-" + testID + ".scope"},
		{name: "empty slice is system.slice", in: ":docker:" + testID, want: "/system.slice/docker-" + testID + ".scope"},
		{name: "empty prefix", in: "machine.slice::" + testID, want: "/machine.slice/" + testID + ".scope"},
		{name: "name is a slice", in: "kubepods.slice::kubepods-burstable.slice", want: "/kubepods.slice/kubepods-burstable.slice"},
		{name: "cgroupfs path unchanged", in: "/kubepods/burstable/pod" + testUID + "/" + testID, want: "/kubepods/burstable/pod" + testUID + "/" + testID},
		{name: "empty unchanged", in: "", want: ""},
		{name: "two parts unchanged", in: "kubepods.slice:" + testID, want: "kubepods.slice:" + testID},
		{name: "four parts unchanged", in: "a.slice:p:n:x", want: "a.slice:p:n:x"},
		{name: "empty name unchanged", in: "a.slice:p:", want: "a.slice:p:"},
		{name: "not a slice unchanged", in: "foo.service:p:n", want: "foo.service:p:n"},
		{name: "double dash unchanged", in: "a--b.slice:p:n", want: "a--b.slice:p:n"},
		{name: "leading dash unchanged", in: "-a.slice:p:n", want: "-a.slice:p:n"},
		{name: "slash in slice unchanged", in: "a/b.slice:p:n", want: "a/b.slice:p:n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpandSystemdPath(tc.in); got != tc.want {
				t.Errorf("ExpandSystemdPath(%q) = %q; want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestExpandSystemdPath_ResultParsesToTheSameContainer(t *testing.T) {
	spec := "kubepods-burstable-pod" + testUIDU + ".slice:cri-containerd:" + testID
	ref, ok := ParsePath(ExpandSystemdPath(spec))
	want := Ref{ContainerID: testID, PodUID: testUID, Runtime: RuntimeContainerd}
	if !ok || ref != want {
		t.Errorf("ParsePath(ExpandSystemdPath(%q)) = %+v, %v; want %+v", spec, ref, ok, want)
	}
}

func FuzzParsePath(f *testing.F) {
	for _, tc := range append(acceptedPaths(), rejectedPaths()...) {
		f.Add(tc.path)
	}
	f.Add("kubepods-burstable-pod" + testUIDU + ".slice:cri-containerd:" + testID)
	f.Fuzz(func(t *testing.T, path string) {
		_ = ExpandSystemdPath(path)
		cpath, ref, ok := ContainerPath(path)
		if pref, pok := ParsePath(path); pok != ok || pref != ref {
			t.Fatalf("ParsePath and ContainerPath disagree on %q", path)
		}
		if !ok {
			return
		}
		checkRef(t, path, ref)
		if !strings.HasPrefix(path, cpath) {
			t.Fatalf("container path %q is not a prefix of %q", cpath, path)
		}
		again, ok := ParsePath(cpath)
		if !ok || again != ref {
			t.Fatalf("ParsePath(%q) = %+v, %v; want %+v as for %q", cpath, again, ok, ref, path)
		}
	})
}

// checkRef asserts the invariants of an accepted Ref.
func checkRef(t *testing.T, path string, ref Ref) {
	t.Helper()
	if !id.IsFull(ref.ContainerID) {
		t.Fatalf("ParsePath(%q) accepted ID %q", path, ref.ContainerID)
	}
	if ref.PodUID != "" && !isPodUID(ref.PodUID, '-') {
		t.Fatalf("ParsePath(%q) accepted pod UID %q", path, ref.PodUID)
	}
	switch ref.Runtime {
	case "", RuntimeContainerd, RuntimeCRIO, RuntimeDocker, RuntimePodman, RuntimeNerdctl:
	default:
		t.Fatalf("ParsePath(%q) returned runtime %q", path, ref.Runtime)
	}
}

func BenchmarkParsePath(b *testing.B) {
	paths := []struct{ name, path string }{
		{"cgroupfs", "/kubepods/burstable/pod" + testUID + "/" + testID},
		{"systemd", systemdPods + "/cri-containerd-" + testID + ".scope"},
		{"subcgroup", systemdPods + "/cri-containerd-" + testID + ".scope/init.scope"},
		{"host", "/system.slice/systemd-journald.service"},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ParsePath(p.path)
			}
		})
	}
}
