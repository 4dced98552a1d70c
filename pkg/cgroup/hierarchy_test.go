package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fakeCgroupRoot builds a directory tree in which each listed file exists.
func fakeCgroupRoot(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		path := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectHierarchy(t *testing.T) {
	cases := []struct {
		name    string
		files   []string
		wantDir string
		want    Mode
	}{
		{name: "v2", files: []string{"cgroup.controllers", "cgroup.procs"}, wantDir: "", want: ModeV2},
		{
			name:    "hybrid",
			files:   []string{"unified/cgroup.controllers", "memory/cgroup.procs", "cpu,cpuacct/cgroup.procs"},
			wantDir: "unified",
			want:    ModeHybrid,
		},
		{
			name:    "v1 prefers cpu,cpuacct",
			files:   []string{"memory/cgroup.procs", "cpu,cpuacct/cgroup.procs", "systemd/cgroup.procs"},
			wantDir: "cpu,cpuacct",
			want:    ModeV1,
		},
		{name: "v1 separate cpu", files: []string{"cpu/cgroup.procs", "memory/cgroup.procs"}, wantDir: "cpu", want: ModeV1},
		{name: "v1 memory", files: []string{"memory/cgroup.procs", "pids/cgroup.procs"}, wantDir: "memory", want: ModeV1},
		{name: "v1 systemd only", files: []string{"systemd/cgroup.procs"}, wantDir: "systemd", want: ModeV1},
		{
			name:    "unified dir without controllers file is not v2",
			files:   []string{"unified/cgroup.procs", "pids/cgroup.procs"},
			wantDir: "pids",
			want:    ModeV1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeCgroupRoot(t, tc.files...)
			got, err := DetectHierarchy(root)
			want := Hierarchy{Dir: filepath.Join(root, tc.wantDir), Mode: tc.want}
			if err != nil || got != want {
				t.Errorf("DetectHierarchy = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func TestDetectHierarchy_FailsWithoutAnyHierarchy(t *testing.T) {
	root := fakeCgroupRoot(t, "blkio/other")
	if _, err := DetectHierarchy(root); !errors.Is(err, ErrNoHierarchy) {
		t.Errorf("DetectHierarchy error = %v; want ErrNoHierarchy", err)
	}
}

func TestDetectHierarchy_ThisHost(t *testing.T) {
	h, err := DetectHierarchy("")
	if err != nil {
		t.Skipf("no cgroup hierarchy on this host: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "cgroup.procs")); err != nil {
		t.Errorf("detected %+v, but it has no cgroup.procs: %v", h, err)
	}
	t.Logf("detected %s hierarchy at %s", h.Mode, h.Dir)
}

func TestMode_String(t *testing.T) {
	for m, want := range map[Mode]string{ModeV2: "v2", ModeHybrid: "hybrid", ModeV1: "v1", 0: "unknown"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q; want %q", m, got, want)
		}
	}
}
