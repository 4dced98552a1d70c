package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// KubeletOptions tune StartKubelet. The zero value works.
type KubeletOptions struct {
	// NodeName is the kubelet's --hostname-override, which static pod names
	// end with (default crie-node-<network slot>).
	NodeName string
	// Logf receives progress and cleanup notes (default: the runtime's).
	Logf func(format string, args ...any)
	// StartTimeout bounds the wait for the kubelet's healthz (default 60s).
	StartTimeout time.Duration
}

// Kubelet is a real standalone kubelet (no API server, static pods from a
// manifest dir) on one Runtime, isolated from the host: its own cgroup
// root, loopback listeners, and a private mount namespace in which the
// sysctls and host paths it would write are files of its temp dir. Its
// methods are safe for concurrent use.
type Kubelet struct {
	rt         *Runtime
	opts       KubeletOptions
	layout     kubeletLayout
	ports      kubeletPorts
	cgroupRoot string
	http       *http.Client

	mu      sync.Mutex
	proc    *daemon
	mountNS string   // the private namespace, as /proc/<pid>/ns/mnt names it
	nsPin   *os.File // holds that namespace open, see pinMountNamespace
	closed  bool
}

// StartKubelet runs a kubelet on rt's socket and waits until its healthz
// answers. The runtime becomes the kubelet's: the kubelet stops any pod it
// did not make, RunPod's too. Start rt with Options.HostReachable when pods
// have HTTP probes. Callers must `defer k.Close()`; rt.Close also closes it.
// On error StartKubelet has already cleaned up.
func StartKubelet(ctx context.Context, rt *Runtime, opts KubeletOptions) (*Kubelet, error) {
	if err := checkExecutable(KubeletPath()); err != nil {
		return nil, fmt.Errorf("start kubelet: %w", err)
	}
	k := &Kubelet{rt: rt, opts: opts, cgroupRoot: kubeletCgroupRoot(rt.slot), http: &http.Client{Timeout: 5 * time.Second}}
	k.withDefaults()
	if err := rt.attachKubelet(k); err != nil {
		return nil, err
	}
	if err := k.start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("start kubelet: %w", err), k.Close())
	}
	return k, nil
}

func (k *Kubelet) withDefaults() {
	if k.opts.NodeName == "" {
		k.opts.NodeName = "crie-node-" + strconv.Itoa(k.rt.slot.n)
	}
	if k.opts.Logf == nil {
		k.opts.Logf = k.rt.opts.Logf
	}
	if k.opts.StartTimeout <= 0 {
		k.opts.StartTimeout = time.Minute
	}
}

func (k *Kubelet) start(ctx context.Context) error {
	dir, err := os.MkdirTemp(k.rt.Dir(), "kubelet-")
	if err != nil {
		return fmt.Errorf("create kubelet dir: %w", err)
	}
	k.layout = newKubeletLayout(dir)
	if err := k.layout.mkdirs(); err != nil {
		return err
	}
	// A run killed outright with this slot may have left its cgroup root.
	if err := errors.Join(killCgroupProcesses(k.cgroupRoot), removeCgroup(k.cgroupRoot)); err != nil {
		return fmt.Errorf("remove stale cgroup root: %w", err)
	}
	if err := createCgroup(k.cgroupRoot); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	k.ports = kubeletPorts{server: ports[0], readOnly: ports[1], healthz: ports[2]}
	params := kubeletConfigParams{layout: k.layout, ports: k.ports, endpoint: k.rt.Endpoint(), cgroupRoot: k.cgroupRoot}
	if err := writeKubeletFiles(params); err != nil {
		return err
	}
	if err := k.launch(); err != nil {
		return err
	}
	return k.waitReady(ctx)
}

// launch starts the kubelet through unshare and the namespace script. The
// script execs the kubelet, so the process started here is the kubelet.
func (k *Kubelet) launch() error {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return fmt.Errorf("find unshare: %w", err)
	}
	args := append([]string{"--mount", "--propagation", "private", "/bin/sh", k.layout.script, KubeletPath()},
		kubeletArgs(k.layout, k.opts.NodeName)...)
	cmd := exec.Command(unshare, args...)
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":"+hostPath)
	proc, err := startProcess(cmd, k.layout.log)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.proc = proc
	k.mu.Unlock()
	k.opts.Logf("harness: kubelet pid %d, node %s, cgroup root %s, read-only port %d", proc.cmd.Process.Pid, k.opts.NodeName, k.cgroupRoot, k.ports.readOnly)
	return nil
}

// waitReady polls until the kubelet runs in a mount namespace other than
// the test's and its healthz answers ok.
func (k *Kubelet) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.opts.StartTimeout)
	defer cancel()
	pid := k.proc.cmd.Process.Pid
	var last error
	for {
		if !k.proc.running() {
			return fmt.Errorf("kubelet exited: %v\n%s", k.proc.err, k.LogTail())
		}
		if last = k.checkReady(pid); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubelet not ready: %w (last: %w)\n%s", ctx.Err(), last, k.LogTail())
		case <-k.proc.done:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (k *Kubelet) checkReady(pid int) error {
	ns, err := mountNamespace(pid)
	if err != nil {
		return err
	}
	own, err := mountNamespace(os.Getpid())
	if err != nil {
		return err
	}
	if ns == own {
		return errors.New("kubelet still in the host's mount namespace")
	}
	if err := k.pinMountNamespace(pid, ns); err != nil {
		return err
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "kubelet" {
		return fmt.Errorf("pid %d is %q, not the kubelet yet", pid, strings.TrimSpace(string(comm)))
	}
	body, err := k.get(context.Background(), k.ports.healthz, "/healthz")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("healthz says %q", body)
	}
	return nil
}

// pinMountNamespace opens the kubelet's mount namespace once it has one.
// The open file keeps the namespace, and with it its inode number, alive
// until Close has killed every process in it: a namespace freed earlier
// could lend its number to a new one, another test's container's, which
// Close would then take for the kubelet's.
func (k *Kubelet) pinMountNamespace(pid int, ns string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.nsPin != nil {
		return nil
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return fmt.Errorf("open mount namespace of %d: %w", pid, err)
	}
	if link, err := os.Readlink(f.Name()); err != nil || link != ns {
		_ = f.Close()
		return fmt.Errorf("mount namespace of %d changed while opening it", pid)
	}
	k.nsPin, k.mountNS = f, ns
	return nil
}

// releaseMountNamespace kills every process left in the kubelet's mount
// namespace, then lets the namespace go. The name is forgotten once no
// process is in it, since the number may then be reused.
func (k *Kubelet) releaseMountNamespace() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.nsPin == nil {
		return nil
	}
	if err := killMountNamespace(k.mountNS); err != nil {
		return err
	}
	_ = k.nsPin.Close()
	k.nsPin, k.mountNS = nil, ""
	return nil
}

func mountNamespace(pid int) (string, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return "", fmt.Errorf("read mount namespace of %d: %w", pid, err)
	}
	return ns, nil
}

// get fetches a path from one of the kubelet's loopback listeners.
func (k *Kubelet) get(ctx context.Context, port int, path string) ([]byte, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// NodeName is the kubelet's node name; static pod names end with
// "-" + NodeName.
func (k *Kubelet) NodeName() string { return k.opts.NodeName }

// CgroupRoot is the kubelet's cgroupRoot (such as /crie-kubelet-3): its pods'
// cgroups are below CgroupRoot()+"/kubepods" in every hierarchy.
func (k *Kubelet) CgroupRoot() string { return k.cgroupRoot }

// RootDir is the kubelet's --root-dir; containers' /etc/hosts and
// /dev/termination-log come from RootDir()/pods/<uid>/.
func (k *Kubelet) RootDir() string { return k.layout.root }

// PodLogsDir is the kubelet's podLogsDir: <ns>_<name>_<uid>/<container>/<attempt>.log.
func (k *Kubelet) PodLogsDir() string { return k.layout.podLogs }

// ManifestDir is the kubelet's staticPodPath.
func (k *Kubelet) ManifestDir() string { return k.layout.manifests }

// ApplyPod writes pod as the static pod manifest <name>.yaml, replacing an
// earlier one of that name. It is written beside the manifests under a
// dot name (which the kubelet skips) and renamed, so the kubelet never reads
// half a file.
func (k *Kubelet) ApplyPod(pod *corev1.Pod) error {
	if pod.Name == "" {
		return errors.New("apply pod: no name")
	}
	p := pod.DeepCopy()
	if p.APIVersion == "" {
		p.APIVersion = "v1"
	}
	if p.Kind == "" {
		p.Kind = "Pod"
	}
	data, err := yaml.Marshal(p)
	if err != nil {
		return fmt.Errorf("marshal pod %s: %w", p.Name, err)
	}
	tmp := filepath.Join(k.layout.manifests, "."+p.Name+".yaml.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write manifest %s: %w", p.Name, err)
	}
	if err := os.Rename(tmp, k.manifestPath(p.Name)); err != nil {
		return fmt.Errorf("write manifest %s: %w", p.Name, err)
	}
	return nil
}

// DeletePod removes the manifest ApplyPod wrote for name; the kubelet then
// stops the pod (its sandbox goes at its next cleanup, about a minute later).
func (k *Kubelet) DeletePod(name string) error {
	if err := os.Remove(k.manifestPath(name)); err != nil {
		return fmt.Errorf("delete manifest %s: %w", name, err)
	}
	return nil
}

func (k *Kubelet) manifestPath(name string) string {
	return filepath.Join(k.layout.manifests, name+".yaml")
}

// Pods is the kubelet's own view of its pods, from its read-only port's
// /pods: names are <manifest name>-<node name>, and the status carries
// phase, conditions, pod IP and container statuses.
func (k *Kubelet) Pods(ctx context.Context) ([]corev1.Pod, error) {
	body, err := k.get(ctx, k.ports.readOnly, "/pods")
	if err != nil {
		return nil, err
	}
	var list corev1.PodList
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decode kubelet pods: %w", err)
	}
	return list.Items, nil
}

// WaitPod polls Pods until the pod called name (as the kubelet reports it,
// <manifest name>-<node name>) satisfies cond, and returns it. It fails
// when ctx ends or the kubelet exits, saying what it saw last.
func (k *Kubelet) WaitPod(ctx context.Context, name string, cond func(corev1.Pod) bool) (corev1.Pod, error) {
	last := "not listed"
	for {
		k.mu.Lock()
		proc := k.proc
		k.mu.Unlock()
		if !proc.running() {
			return corev1.Pod{}, fmt.Errorf("wait for pod %s: kubelet exited\n%s", name, k.LogTail())
		}
		pods, err := k.Pods(ctx)
		if err != nil {
			last = err.Error()
		}
		for _, p := range pods {
			if p.Name != name {
				continue
			}
			if cond(p) {
				return p, nil
			}
			last = describePod(p)
		}
		select {
		case <-ctx.Done():
			return corev1.Pod{}, fmt.Errorf("wait for pod %s: %w (last: %s)\n%s", name, ctx.Err(), last, k.LogTail())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// describePod is a one-line status for error messages.
func describePod(p corev1.Pod) string {
	parts := []string{"phase " + string(p.Status.Phase)}
	for _, c := range p.Status.ContainerStatuses {
		state := "waiting"
		switch {
		case c.State.Running != nil:
			state = "running"
		case c.State.Terminated != nil:
			state = "terminated " + c.State.Terminated.Reason
		case c.State.Waiting != nil:
			state = "waiting " + c.State.Waiting.Reason + " " + c.State.Waiting.Message
		}
		parts = append(parts, fmt.Sprintf("%s %s ready=%t", c.Name, state, c.Ready))
	}
	return strings.Join(parts, ", ")
}

// LogTail returns the last lines of the kubelet's log.
func (k *Kubelet) LogTail() string { return tailFile("kubelet log", k.layout.log) }

// Close stops the kubelet and removes what it made: every pod of its
// runtime (through the CRI, while containerd runs), the processes of its
// mount namespace, its cgroup root in every hierarchy, and its temp dir.
// The kubelet does not stop pods when it stops, so Close does. It is
// idempotent; Leftovers lists anything that survived it.
func (k *Kubelet) Close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	proc := k.proc
	k.mu.Unlock()
	proc.stop(syscall.SIGTERM, 10*time.Second)
	errs := []error{k.releaseMountNamespace()}
	if k.layout.dir != "" {
		errs = append(errs, killProcessesReferring(k.layout.dir))
	}
	k.rt.removePodsIfRunning()
	errs = append(errs, killCgroupProcesses(k.cgroupRoot), removeCgroup(k.cgroupRoot))
	if k.layout.dir != "" {
		errs = append(errs, unmountUnder(k.layout.dir), removeUnmountedDir(k.layout.dir))
	}
	k.rt.detachKubelet(k)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close kubelet %s: %w", k.opts.NodeName, err)
	}
	return nil
}

// Leftovers lists what this kubelet still has on the host; after Close it
// should be empty.
func (k *Kubelet) Leftovers() []string {
	var left []string
	k.mu.Lock()
	proc, ns := k.proc, k.mountNS
	k.mu.Unlock()
	if proc.running() {
		left = append(left, fmt.Sprintf("kubelet process %d", proc.cmd.Process.Pid))
	}
	if pids, _ := processesInMountNamespace(ns); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes %v in the kubelet's mount namespace %s", pids, ns))
	}
	dirs, _ := cgroupDirs(k.cgroupRoot)
	left = append(left, prefixAll("cgroup ", dirs)...)
	if k.layout.dir == "" {
		return left
	}
	if pids, _ := processesReferring(k.layout.dir); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes %v referring to %s", pids, k.layout.dir))
	}
	if mounts, _ := mountsUnder(k.layout.dir); len(mounts) > 0 {
		left = append(left, fmt.Sprintf("mounts %v", mounts))
	}
	if exists(k.layout.dir) {
		left = append(left, "dir "+k.layout.dir)
	}
	return left
}
