// Package querytest holds what the tests and load program of the HTTP and
// gRPC APIs share, both being translations of pkg/query: caches full of
// kubelet-sized records and a fake PID resolver.
package querytest

import (
	"fmt"
	"io/fs"
	"testing"

	"github.com/cri-enricherd/cri-enricherd/internal/benchdata"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
)

// FullCache returns what a full default-sized cache holds, 8,000
// kubelet-sized containers in 2,000 pods plus their sandboxes, and the IDs
// of its containers.
func FullCache(tb testing.TB) (*cache.Cache, []string) {
	tb.Helper()
	c, ids := Filled(8000)
	if c.Len() != cache.DefaultCapacity {
		tb.Fatalf("cache holds %d records, want it full at %d", c.Len(), cache.DefaultCapacity)
	}
	return c, ids
}

// Filled returns a cache made with opts holding n kubelet-sized
// containers, four to a pod, and their pods' sandboxes, and the IDs of the
// containers.
func Filled(n int, opts ...cache.Option) (*cache.Cache, []string) {
	c := cache.New(opts...)
	containers, sandboxes := benchdata.Records(n, 4)
	for _, rec := range sandboxes {
		c.Put(rec)
	}
	ids := make([]string, len(containers))
	for i, rec := range containers {
		c.Put(rec)
		ids[i] = rec.ID
	}
	return c, ids
}

// PIDs resolves PIDs from a map: pid -> container ID, "" for a host
// process; a PID not in it does not exist.
type PIDs map[int]string

// Resolve answers as the /proc resolver does.
func (f PIDs) Resolve(pid int) (string, cgroup.Ref, error) {
	id, ok := f[pid]
	switch {
	case !ok:
		return "", cgroup.Ref{}, fmt.Errorf("pid %d: %w", pid, fs.ErrNotExist)
	case id == "":
		return "", cgroup.Ref{}, fmt.Errorf("pid %d: %w", pid, cgroup.ErrNoContainer)
	}
	return "/kubepods/pod1/" + id, cgroup.Ref{ContainerID: id}, nil
}
