package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostPath is appended to containerd's PATH so its shim finds runc and the
// CNI plugins' helpers even when the test runs with a thin environment.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const logTailLines = 40

// daemon is one long-running child process: containerd or a kubelet.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// startDaemon starts containerd with the runtime's config, appending its
// output to the log file (a restart keeps the earlier log).
func startDaemon(v Variant, l layout) (*daemon, error) {
	cmd := exec.Command(v.Binary, "--config", l.config)
	cmd.Env = append(os.Environ(), "PATH="+v.ShimDir+":"+os.Getenv("PATH")+":"+hostPath)
	return startProcess(cmd, l.log)
}

// startProcess starts cmd with its output appended to logPath. Its own
// process group keeps a terminal's Ctrl-C away from it, so Close can still
// talk to it after the demo caught SIGINT.
func startProcess(cmd *exec.Cmd, logPath string) (*daemon, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *daemon) running() bool {
	if d == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop sends sig, waits up to grace, then kills. It returns once the process
// has been reaped.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) {
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
		return
	case <-time.After(grace):
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// waitReady polls the CRI until Version answers and Status reports both the
// runtime and the network ready, or the daemon exits, or ctx ends.
func waitReady(ctx context.Context, d *daemon, client runtimeapi.RuntimeServiceClient, logPath string) error {
	var last error
	for {
		if !d.running() {
			exit := d.err
			if exit == nil {
				exit = errors.New("exit status 0")
			}
			return fmt.Errorf("containerd exited: %w\n%s", exit, logTail(logPath))
		}
		if last = probe(ctx, client); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd not ready: %w (last: %w)\n%s", ctx.Err(), last, logTail(logPath))
		case <-d.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, client runtimeapi.RuntimeServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := client.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	st, err := client.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Only these two gate pods; 2.x adds informational conditions (such as
	// ContainerdHasNoDeprecationWarnings, false on a cgroup v1 host).
	ready := map[string]bool{runtimeapi.RuntimeReady: false, runtimeapi.NetworkReady: false}
	for _, c := range st.GetStatus().GetConditions() {
		if _, ok := ready[c.GetType()]; ok {
			ready[c.GetType()] = c.GetStatus()
		}
	}
	for typ, ok := range ready {
		if !ok {
			return fmt.Errorf("condition %s not true", typ)
		}
	}
	return nil
}

// logTail returns the last lines of the containerd log for error messages.
func logTail(path string) string { return tailFile("containerd log", path) }

// tailFile returns the last lines of a log file, introduced by its label.
func tailFile(label, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no %s: %v)", label, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	return label + " tail (" + path + "):\n" + strings.Join(lines, "\n")
}

// processesReferring returns the PIDs whose command line mentions needle:
// the containerd started with a config in the runtime dir and the shims
// started with -address <socket in the runtime dir>.
func processesReferring(needle string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(needle)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killProcessesReferring SIGKILLs every process found by processesReferring
// and waits for them to be gone.
func killProcessesReferring(needle string) error {
	return killUntilGone("referring to "+needle, func() ([]int, error) { return processesReferring(needle) })
}

// killUntilGone SIGKILLs the processes find returns until it returns none.
func killUntilGone(what string, find func() ([]int, error)) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := find()
		if err != nil || len(pids) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v %s survived SIGKILL", pids, what)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill %d: %w", pid, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesInMountNamespace returns the PIDs whose mount namespace is ns
// (as /proc/<pid>/ns/mnt names it); none for an empty ns.
func processesInMountNamespace(ns string) ([]int, error) {
	if ns == "" {
		return nil, nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && link == ns {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killMountNamespace SIGKILLs every process in mount namespace ns; the
// namespace and its mounts go with the last of them.
func killMountNamespace(ns string) error {
	return killUntilGone("in mount namespace "+ns, func() ([]int, error) { return processesInMountNamespace(ns) })
}
