package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cniResultsDir is where libcni caches ADD results; containerd exposes no
// setting for it, so a killed runtime leaves files here.
const cniResultsDir = "/var/lib/cni/results"

// hostState is what the runtime left on the host outside its temp dir, kept
// after RemovePod so Close and Leftovers can check it. Guarded by Runtime.mu.
type hostState struct {
	pods          map[string]*podRecord // live pods by sandbox ID
	sandboxIDs    map[string]struct{}   // every sandbox ever made
	cgroupParents map[string]struct{}   // every pod cgroup ever used
	netns         map[string]struct{}   // every pod network namespace file
	shimSockets   []string              // found by Close in the shim bundles
}

func newHostState() hostState {
	return hostState{
		pods: map[string]*podRecord{}, sandboxIDs: map[string]struct{}{},
		cgroupParents: map[string]struct{}{}, netns: map[string]struct{}{},
	}
}

func (r *Runtime) trackPod(rec *podRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.host.pods[rec.pod.SandboxID] = rec
	r.host.sandboxIDs[rec.pod.SandboxID] = struct{}{}
}

func (r *Runtime) trackCgroupParent(parent string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.host.cgroupParents[parent] = struct{}{}
}

func (r *Runtime) trackNetNS(path string) {
	if path == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.host.netns[path] = struct{}{}
}

// Close closes the runtime's kubelet if one runs, removes every pod of this
// runtime, stops containerd, and removes
// everything it left on the host: shims and container processes, mounts
// under the temp dir, network namespaces, pod cgroups in every hierarchy,
// CNI cache files, the bridge and the temp dir. It works after Kill, after
// a failed Start or RunPod, and a second call does nothing. Shared cgroup
// parents (/kubepods, /kubepods/burstable) stay, as on any node.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.waitForOps()
	r.mu.Lock()
	d, k := r.daemon, r.kubelet
	r.mu.Unlock()
	var errs []error
	if k != nil {
		// Stopped first, or it would restart the pods removed below.
		errs = append(errs, k.Close())
	}
	r.removePodsIfRunning()
	d.stop(syscall.SIGTERM, 10*time.Second)
	errs = append(errs, r.cleanupHost()...)
	if r.conn != nil {
		_ = r.conn.Close()
	}
	errs = append(errs, r.slot.release())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s runtime %s: %w", r.variant.Name, r.layout.dir, err)
	}
	return nil
}

// waitForOps lets RunPod calls in flight finish, so the sandboxes they
// are creating are known before the pods are removed.
func (r *Runtime) waitForOps() {
	done := make(chan struct{})
	go func() {
		r.ops.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(createTimeout):
		r.opts.Logf("harness: gave up waiting for RunPod calls in flight")
	}
}

// removeAllPods removes every sandbox containerd knows, including ones a
// test made through Client, the polite way. Failures are only noted: the
// host cleanup after it does not depend on containerd.
func (r *Runtime) removeAllPods() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := r.client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		r.opts.Logf("harness: list pod sandboxes: %v", err)
	}
	for _, sb := range resp.GetItems() {
		r.adoptSandbox(ctx, sb.GetId())
		if _, err := r.client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			r.opts.Logf("harness: stop pod sandbox %s: %v", sb.GetId(), err)
		}
		if _, err := r.client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.GetId()}); err != nil {
			r.opts.Logf("harness: remove pod sandbox %s: %v", sb.GetId(), err)
		}
	}
}

// attachKubelet makes k the runtime's kubelet; a runtime has at most one.
func (r *Runtime) attachKubelet(k *Kubelet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return fmt.Errorf("start kubelet: runtime %s is closed", r.layout.dir)
	case r.kubelet != nil:
		return fmt.Errorf("start kubelet: runtime %s already has one", r.layout.dir)
	}
	r.kubelet = k
	return nil
}

func (r *Runtime) detachKubelet(k *Kubelet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kubelet == k {
		r.kubelet = nil
	}
}

// removePodsIfRunning removes every pod while containerd runs (after Kill
// the host cleanup does without it). Kubelet.Close uses it too: the kubelet
// does not stop its pods when it stops, and the runtime is the kubelet's.
func (r *Runtime) removePodsIfRunning() {
	r.mu.Lock()
	d := r.daemon
	r.mu.Unlock()
	if d.running() {
		r.removeAllPods()
	}
}

// adoptSandbox tracks the cgroup and netns of a sandbox RunPod did not make.
func (r *Runtime) adoptSandbox(ctx context.Context, id string) {
	r.mu.Lock()
	_, known := r.host.sandboxIDs[id]
	r.host.sandboxIDs[id] = struct{}{}
	r.mu.Unlock()
	if known {
		return
	}
	resp, err := r.client.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		r.opts.Logf("harness: pod sandbox status %s: %v", id, err)
		return
	}
	if si, err := parseSandboxInfo(resp.GetInfo()["info"]); err == nil {
		if p := si.RuntimeSpec.Linux.CgroupsPath; p != "" {
			r.trackCgroupParent(path.Dir(p))
		}
		r.trackNetNS(si.networkNamespace())
	}
}

// adoptBundles tracks the cgroup of every task bundle in the state dir, and
// the network namespace and ID of every sandbox among them. It finds what Close could not learn through the
// CRI, such as a kubelet's pods when containerd was killed before Close.
func (r *Runtime) adoptBundles() {
	configs, _ := filepath.Glob(filepath.Join(r.layout.state, "io.containerd.runtime.v2.task", "*", "*", "config.json"))
	for _, config := range configs {
		data, err := os.ReadFile(config)
		if err != nil {
			continue
		}
		var spec ociSpec
		if err := json.Unmarshal(data, &spec); err != nil {
			r.opts.Logf("harness: parse bundle %s: %v", config, err)
			continue
		}
		if p := spec.Linux.CgroupsPath; p != "" {
			r.trackCgroupParent(path.Dir(p))
		}
		// A sandbox names its netns file; a container joins /proc/<pid>/ns/net.
		if ns := spec.networkNamespace(); ns != "" && !strings.HasPrefix(ns, "/proc/") {
			r.trackNetNS(ns)
			r.mu.Lock()
			r.host.sandboxIDs[filepath.Base(filepath.Dir(config))] = struct{}{}
			r.mu.Unlock()
		}
	}
}

// cleanupHost removes what containerd, its shims and runc left outside the
// runtime's control, in an order where each step can succeed: processes
// first, then mounts, then the files and cgroups they held.
func (r *Runtime) cleanupHost() []error {
	r.adoptBundles()
	r.mu.Lock()
	parents, netns, sandboxes := keys(r.host.cgroupParents), keys(r.host.netns), keys(r.host.sandboxIDs)
	r.mu.Unlock()
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(killProcessesReferring(r.layout.dir))
	for _, p := range parents {
		add(killCgroupProcesses(p))
	}
	socks := shimSockets(r.layout.state)
	r.mu.Lock()
	r.host.shimSockets = append(r.host.shimSockets, socks...)
	r.mu.Unlock()
	add(removeFiles(socks))
	add(unmountUnder(r.layout.dir))
	for _, ns := range netns {
		add(removeNetNS(ns))
	}
	for _, p := range parents {
		add(removeCgroup(p))
	}
	add(removeCNIResults(r.slot.networkName(), sandboxes))
	add(r.removeDir())
	return errs
}

// removeDir deletes the temp dir once nothing is mounted below it.
func (r *Runtime) removeDir() error { return removeUnmountedDir(r.layout.dir) }

// Leftovers lists what this runtime still has on the host; after Close it
// should be empty. Tests assert on it to prove the cleanup. The bridge is
// not listed: once Close released its slot another runtime may own a
// bridge of the same name (Close reports a failed bridge removal itself).
func (r *Runtime) Leftovers() []string {
	var left []string
	if pids, _ := processesReferring(r.layout.dir); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes %v referring to %s", pids, r.layout.dir))
	}
	if mounts, _ := mountsUnder(r.layout.dir); len(mounts) > 0 {
		left = append(left, fmt.Sprintf("mounts %v", mounts))
	}
	r.mu.Lock()
	parents, netns, socks := keys(r.host.cgroupParents), keys(r.host.netns), slices.Clone(r.host.shimSockets)
	r.mu.Unlock()
	for _, ns := range netns {
		if exists(ns) {
			left = append(left, "network namespace "+ns)
		}
	}
	for _, sock := range socks {
		if exists(sock) {
			left = append(left, "shim socket "+sock)
		}
	}
	for _, p := range parents {
		dirs, _ := cgroupDirs(p)
		left = append(left, prefixAll("cgroup ", dirs)...)
	}
	if exists(r.layout.dir) {
		left = append(left, "dir "+r.layout.dir)
	}
	return left
}

// shimSockets lists the sockets shims create under /run/containerd/s
// (outside the state dir); a SIGKILLed shim cannot remove its own. Each
// bundle names its shim's socket: 1.6 in an "address" file, 2.x in the
// "address" field of bootstrap.json.
func shimSockets(state string) []string {
	bundles, _ := filepath.Glob(filepath.Join(state, "io.containerd.runtime.v2.task", "*", "*"))
	var socks []string
	for _, bundle := range bundles {
		for _, addr := range shimAddresses(bundle) {
			if sock, ok := strings.CutPrefix(addr, "unix://"); ok && strings.HasPrefix(sock, "/run/containerd/s/") {
				socks = append(socks, sock)
			}
		}
	}
	return socks
}

func removeFiles(paths []string) error {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

func shimAddresses(bundle string) []string {
	var addrs []string
	if data, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil {
		addrs = append(addrs, strings.TrimSpace(string(data)))
	}
	var bootstrap struct {
		Address string `json:"address"`
	}
	if data, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil && json.Unmarshal(data, &bootstrap) == nil {
		addrs = append(addrs, bootstrap.Address)
	}
	return addrs
}

// removeNetNS unmounts and deletes a network namespace file that
// containerd did not get to remove.
func removeNetNS(p string) error {
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", p, err)
	}
	return nil
}

// removeCNIResults deletes libcni's cached results for this runtime's
// network and for the loopback network of its sandboxes.
func removeCNIResults(network string, sandboxIDs []string) error {
	patterns := []string{network + "-*"}
	for _, id := range sandboxIDs {
		patterns = append(patterns, "cni-loopback-"+id+"-*")
	}
	for _, pat := range patterns {
		files, _ := filepath.Glob(filepath.Join(cniResultsDir, pat))
		if err := removeFiles(files); err != nil {
			return fmt.Errorf("remove cni results: %w", err)
		}
	}
	return nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func prefixAll(prefix string, items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = prefix + s
	}
	return out
}
