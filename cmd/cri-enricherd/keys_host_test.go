package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

const podUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

// startedLater adds a pod to rt whose only container the runtime starts
// after the daemon's bootstrap (call the returned func then): with events
// off, only the daemon's cgroup watcher or an API client can find it.
func startedLater(rt *fakecri.Runtime) (sandboxID string, start func() string) {
	sb, _ := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop", UID: podUID})
	return sb, func() string {
		id := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "late"})
		rt.StartContainer(id)
		return id
	}
}

func TestDaemon_CgroupRootIsTheTreeWatched(t *testing.T) {
	t.Parallel()
	for _, configured := range []bool{true, false} {
		t.Run(fmt.Sprintf("container cgroup under the configured root %v", configured), func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			other := subdir(t, h.dir, "other-cgroup")
			h.cgroupHierarchy(other)
			root := h.cgroupRoot
			if !configured {
				root = other // runc made the container's cgroup in a tree the daemon was not told of
			}
			rt := fakecri.New()
			_, startContainer := startedLater(rt)
			d := h.start(rt.Start(t), settings{"cgroup.root": h.cgroupRoot, "runtime.events": "off"})
			d.waitReady()
			id := startContainer()
			h.addCgroup(root, podUID, id)
			found := func() bool { _, ok := d.record(id); return ok }
			if configured {
				eventually(t, 10*time.Second, "the container seen through its cgroup is looked up", found)
				return
			}
			time.Sleep(quietFor)
			if found() || d.metric("cri_enricherd_cgroup_events_total") != 0 {
				t.Errorf("cgroup.root %s: a cgroup under %s was seen", h.cgroupRoot, other)
			}
		})
	}
}

// TestDaemon_CgroupRescanIntervalFindsWhatInotifyMissed hides a container's
// cgroup from inotify by creating it on a file system mounted over a pod's
// watched directory: only a rescan of the tree finds it.
func TestDaemon_CgroupRescanIntervalFindsWhatInotifyMissed(t *testing.T) {
	t.Parallel()
	for _, interval := range []string{"100ms", "1h"} {
		t.Run(interval, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			rt := fakecri.New()
			sb, probes := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop", UID: podUID, Containers: []fakecri.ContainerSpec{{Name: "probe"}}})
			d := h.start(rt.Start(t), settings{"runtime.events": "off", "cgroup.rescan_interval": interval})
			d.waitReady()
			// The probe's cgroup being reported shows its pod's directory
			// is watched, so the mount below comes after the watch.
			h.addCgroup(h.cgroupRoot, podUID, probes[0])
			eventually(t, 10*time.Second, "the probe's cgroup is reported", func() bool {
				return d.metric("cri_enricherd_cgroup_events_total", `kind="added"`) >= 1
			})
			podDir := podCgroupDir(h.cgroupRoot, podUID)
			if err := unix.Mount("tmpfs", podDir, "tmpfs", 0, "size=64k"); err != nil {
				t.Skipf("mount a tmpfs over a cgroup directory: %v (needs root)", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(podDir, unix.MNT_DETACH) })
			id := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "hidden"})
			rt.StartContainer(id)
			if err := os.Mkdir(filepath.Join(podDir, id), 0o755); err != nil {
				t.Fatal(err)
			}
			found := func() bool { _, ok := d.record(id); return ok }
			if interval == "100ms" {
				eventually(t, 10*time.Second, "a rescan finds the hidden cgroup", found)
			} else {
				time.Sleep(quietFor)
				if found() {
					t.Errorf("cgroup.rescan_interval %s: the hidden cgroup was found within %v", interval, quietFor)
				}
			}
			if err := d.stop(); err != nil { // before the cleanup unmounts under the watcher
				t.Error(err)
			}
		})
	}
}

func TestDaemon_ProcRootIsWhereProcessesAreRead(t *testing.T) {
	t.Parallel()
	rt := fakecri.New()
	_, ids := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop", UID: podUID, Containers: []fakecri.ContainerSpec{{Name: "app"}}})
	endpoint := rt.Start(t)
	for _, configured := range []bool{true, false} {
		t.Run(fmt.Sprintf("process under the configured root %v", configured), func(t *testing.T) {
			h := newHost(t)
			root := h.procRoot
			if !configured {
				root = subdir(t, h.dir, "other-proc")
			}
			h.addProcess(root, 4242, podUID, ids[0])
			d := h.start(endpoint, settings{"proc.root": h.procRoot})
			d.waitReady()
			code, body := d.get("/v1/pids/4242")
			var rec enrich.Record
			_ = json.Unmarshal(body, &rec)
			switch {
			case configured && (code != http.StatusOK || rec.ID != ids[0]):
				t.Errorf("proc.root %s holds pid 4242: GET /v1/pids/4242 = %d %s", h.procRoot, code, body)
			case !configured && code != http.StatusNotFound:
				t.Errorf("pid 4242 only under %s: GET /v1/pids/4242 = %d %s, want 404", root, code, body)
			}
		})
	}
}

func TestDaemon_CacheSizeEvictsPastIt(t *testing.T) {
	t.Parallel()
	const records = 111 // a sandbox and 110 containers
	tests := []struct {
		size          string
		wantEvictions bool
	}{
		{"100", true},
		{"1000", false},
	}
	for _, tt := range tests {
		t.Run(tt.size, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			podWith(rt, "big-0", records-1)
			d := newHost(t).start(rt.Start(t), settings{"cache.size": tt.size})
			d.waitReady()
			s := d.scrape()
			evictions, held := s.Sum("cri_enricherd_cache_evictions_total"), s.Sum("cri_enricherd_cache_entries")
			if (evictions > 0) != tt.wantEvictions || (tt.wantEvictions && held > 100) || (!tt.wantEvictions && held != records) {
				t.Errorf("cache.size %s with %d records: %v evictions, %v held", tt.size, records, evictions, held)
			}
		})
	}
}

func TestDaemon_CacheDeletedGraceKeepsDeletedContainersAnswerable(t *testing.T) {
	t.Parallel()
	for _, grace := range []string{"0s", "1h"} {
		t.Run(grace, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			rt.SetEvents(fakecri.EventsStream)
			_, ids := podWith(rt, "web-0", 1)
			d := newHost(t).start(rt.Start(t), settings{"runtime.events": "on", "cache.deleted_grace": grace})
			d.waitReady()
			eventually(t, 10*time.Second, "the event stream is open", func() bool { return rt.Subscribers() == 1 })
			rt.RemoveContainer(ids[0])
			if grace == "0s" {
				eventually(t, 10*time.Second, "the deleted container is forgotten", func() bool { _, ok := d.record(ids[0]); return !ok })
				return
			}
			eventually(t, 10*time.Second, "the container is marked deleted", func() bool {
				rec, ok := d.record(ids[0])
				return ok && rec.DeletedAt != nil
			})
			time.Sleep(quietFor)
			if _, ok := d.record(ids[0]); !ok {
				t.Errorf("cache.deleted_grace %s: the deleted container was forgotten within %v", grace, quietFor)
			}
		})
	}
}

func TestDaemon_CacheNegativeTTLHoldsBackUnknownIDs(t *testing.T) {
	t.Parallel()
	unknown := fakecri.ID("no such container")
	for _, ttl := range []string{"1ms", "1h"} {
		t.Run(ttl, func(t *testing.T) {
			t.Parallel()
			rt := fakecri.New()
			d := newHost(t).start(rt.Start(t), settings{"cache.negative_ttl": ttl})
			d.waitReady()
			asked := func() int { return rt.CallsFor(fakecri.RPCContainerStatus, unknown) }
			ask := func() {
				if code, body := d.get("/v1/containers/" + unknown); code != http.StatusNotFound {
					t.Fatalf("GET an unknown id = %d %s", code, body)
				}
			}
			ask()
			if ttl == "1ms" {
				eventually(t, 10*time.Second, "the unknown id is asked again", func() bool { ask(); return asked() >= 2 })
				return
			}
			for range 5 {
				ask()
			}
			if got := asked(); got != 1 {
				t.Errorf("cache.negative_ttl %s: the runtime was asked %d times about an unknown id", ttl, got)
			}
		})
	}
}
