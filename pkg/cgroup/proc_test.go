package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const (
	cgroupfsPath = "/kubepods/burstable/pod" + testUID + "/" + testID
	hybridHost   = "12:pids:/system.slice/ssh.service\n" +
		"4:memory:/system.slice/ssh.service\n" +
		"2:cpu,cpuacct:/system.slice/ssh.service\n" +
		"1:name=systemd:/system.slice/ssh.service\n" +
		"0::/system.slice/ssh.service\n"
)

func TestParseProcCgroup(t *testing.T) {
	cases := []struct {
		name string
		data string
		want []ProcLine
	}{
		{
			name: "v2",
			data: "0::" + cgroupfsPath + "\n",
			want: []ProcLine{{HierarchyID: 0, Path: cgroupfsPath}},
		},
		{
			name: "v1 with named hierarchy",
			data: "4:memory:" + cgroupfsPath + "\n2:cpu,cpuacct:" + cgroupfsPath + "\n1:name=systemd:/\n",
			want: []ProcLine{
				{HierarchyID: 4, Controllers: []string{"memory"}, Path: cgroupfsPath},
				{HierarchyID: 2, Controllers: []string{"cpu", "cpuacct"}, Path: cgroupfsPath},
				{HierarchyID: 1, Controllers: []string{"name=systemd"}, Path: "/"},
			},
		},
		{
			name: "hybrid without trailing newline",
			data: "3:pids:/a\n0::/b",
			want: []ProcLine{
				{HierarchyID: 3, Controllers: []string{"pids"}, Path: "/a"},
				{HierarchyID: 0, Path: "/b"},
			},
		},
		{
			name: "deleted cgroup",
			data: "0::" + cgroupfsPath + " (deleted)\n",
			want: []ProcLine{{HierarchyID: 0, Path: cgroupfsPath, Deleted: true}},
		},
		{name: "colon in path", data: "0::/a:b\n", want: []ProcLine{{Path: "/a:b"}}},
		{name: "blank lines", data: "\n0::/\n\n", want: []ProcLine{{Path: "/"}}},
		{name: "empty", data: "", want: []ProcLine{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseProcCgroup([]byte(tc.data))
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseProcCgroup(%q) = %+v, %v; want %+v", tc.data, got, err, tc.want)
			}
		})
	}
}

func TestParseProcCgroup_RejectsMalformedLines(t *testing.T) {
	cases := map[string]string{
		"no colon":              "garbage\n",
		"one colon":             "0:/path\n",
		"hierarchy not numeric": "x::/path\n",
		"negative hierarchy":    "-1::/path\n",
		"relative path":         "0::path\n",
		"empty path":            "4:memory:\n",
		"v2 with controllers":   "0:memory:/path\n",
		"bad second line":       "0::/\n4:memory\n",
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseProcCgroup([]byte(data))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseProcCgroup(%q) error = %v; want ErrMalformed", data, err)
			}
		})
	}
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte(hybridHost))
	f.Add([]byte("0::" + cgroupfsPath + " (deleted)\n"))
	f.Add([]byte("1:name=systemd:/\n0::/a:b"))
	for _, tc := range acceptedPaths() {
		f.Add([]byte("4:memory:" + tc.path + "\n0::" + tc.path + "\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseProcCgroup(data)
		if err != nil {
			return
		}
		for _, l := range lines {
			if !strings.HasPrefix(l.Path, "/") || l.HierarchyID < 0 || (l.IsV2() && len(l.Controllers) > 0) {
				t.Fatalf("ParseProcCgroup(%q) returned %+v", data, l)
			}
			if ref, ok := ParsePath(l.Path); ok {
				checkRef(t, l.Path, ref)
			}
		}
		if path, ref, ok := pickContainer(lines); ok {
			if again, ok := ParsePath(path); !ok || again != ref {
				t.Fatalf("picked path %q parses to %+v, %v; want %+v", path, again, ok, ref)
			}
		}
	})
}

// fakeProc writes a /proc/<pid>/cgroup file per pid into a temp proc root.
func fakeProc(t *testing.T, files map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, data := range files {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestProcResolver_Resolve(t *testing.T) {
	subPath := systemdPods + "/cri-containerd-" + testID + ".scope"
	root := fakeProc(t, map[int]string{
		10: "0::" + cgroupfsPath + "\n",
		11: "4:memory:" + cgroupfsPath + "\n1:name=systemd:/\n0::/\n",
		12: "4:memory:/kubepods/pod" + testUID + "/" + testNodeID + "\n0::" + cgroupfsPath + "\n",
		13: "0::" + subPath + "/init.scope\n",
		14: "1:name=systemd:/user.slice\n4:memory:" + cgroupfsPath + "\n",
	})
	cases := []struct {
		name     string
		pid      int
		wantPath string
		wantRef  Ref
	}{
		{name: "v2 only", pid: 10, wantPath: cgroupfsPath, wantRef: Ref{ContainerID: testID, PodUID: testUID}},
		{name: "hybrid with host v2 line", pid: 11, wantPath: cgroupfsPath, wantRef: Ref{ContainerID: testID, PodUID: testUID}},
		{name: "v2 preferred over v1", pid: 12, wantPath: cgroupfsPath, wantRef: Ref{ContainerID: testID, PodUID: testUID}},
		{
			name:     "sub-cgroup cut to container",
			pid:      13,
			wantPath: subPath,
			wantRef:  Ref{ContainerID: testID, PodUID: testUID, Runtime: RuntimeContainerd},
		},
		{name: "v1 only, later line", pid: 14, wantPath: cgroupfsPath, wantRef: Ref{ContainerID: testID, PodUID: testUID}},
	}
	r := NewProcResolver(root)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, ref, err := r.Resolve(tc.pid)
			if err != nil || path != tc.wantPath || ref != tc.wantRef {
				t.Errorf("Resolve(%d) = %q, %+v, %v; want %q, %+v", tc.pid, path, ref, err, tc.wantPath, tc.wantRef)
			}
		})
	}
}

func TestProcResolver_ResolveErrors(t *testing.T) {
	root := fakeProc(t, map[int]string{
		20: hybridHost,
		21: "4:memory:/kubepods/burstable/pod" + testUID + "\n0::/\n",
		22: "not a cgroup file\n",
	})
	cases := []struct {
		name    string
		pid     int
		wantErr error // nil means any error
	}{
		{name: "host process", pid: 20, wantErr: ErrNoContainer},
		{name: "pod-level cgroup", pid: 21, wantErr: ErrNoContainer},
		{name: "malformed file", pid: 22, wantErr: ErrMalformed},
		{name: "no such pid", pid: 23, wantErr: fs.ErrNotExist},
		{name: "zero pid", pid: 0},
		{name: "negative pid", pid: -1},
	}
	r := NewProcResolver(root)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.Resolve(tc.pid)
			if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("Resolve(%d) error = %v; want %v", tc.pid, err, tc.wantErr)
			}
		})
	}
}

func TestNewProcResolver_DefaultsToProc(t *testing.T) {
	if got := NewProcResolver("").procRoot; got != "/proc" {
		t.Errorf("procRoot = %q; want /proc", got)
	}
}
