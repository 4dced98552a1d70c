package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHierarchyFirstPID_ReadsTheCgroupsFirstProcess(t *testing.T) {
	dir := t.TempDir()
	cg := filepath.Join(dir, "kubepods", "pod1", "abc")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte("4242\n4243\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty", "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := Hierarchy{Dir: dir, Mode: ModeV2}
	tests := []struct {
		name, path string
		want       int
	}{
		{"first of two", "/kubepods/pod1/abc", 4242},
		{"no process", "/empty", 0},
		{"no such cgroup", "/kubepods/pod1/nope", 0},
		{"escape refused", "/../etc", 0},
		{"empty path", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.FirstPID(tt.path); got != tt.want {
				t.Errorf("FirstPID(%q) = %d, want %d", tt.path, got, tt.want)
			}
		})
	}
}
