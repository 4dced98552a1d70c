package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// HostSnapshot is the part of the host a kubelet run could change: cgroup
// dirs (each hierarchy's top level and the QoS level of kubepods* dirs),
// network interfaces, mount points, network namespaces, libcni's cached
// results, processes named kubelet, containerd or containerd-shim*,
// iptables chains, the sysctls the kubelet tunes and the host paths it
// uses. Take one before a test starts its runtime and kubelet and one after
// it closed them; Diff must then be empty.
//
// Other tests may run on the host meanwhile. An item that is new in the
// later snapshot is excused when a live harness runtime of anyone accounts
// for it, judged at snapshot time. A runtime is live while it holds its
// network slot; its dir is found in the command lines of its containerd and
// shims. Excused are a mount or process that names such a dir, a cgroup or
// network namespace one of its processes is in, a CNI result of its network
// or sandboxes, and the bridge, veths and kubelet cgroup root of a held
// slot. A closed runtime holds no slot, so nothing it left is ever excused.
// A runtime between two states (a pod cgroup made, its first process not
// yet in it) can show an item for a moment: a leak is what every one of a
// few snapshots reports. Items that disappeared are not reported: other
// tests remove their own.
type HostSnapshot struct {
	// items maps each item ("mount /x", "process 12 kubelet") to what
	// accounts for it in this snapshot, "" when nothing does.
	items map[string]string
	// values are states compared as they are: sysctls, path existence,
	// whether iptables could be listed.
	values map[string]string
}

// Diff lists what b has that a lacked and no live runtime accounts for,
// and every value that changed from a to b, sorted.
func (a HostSnapshot) Diff(b HostSnapshot) []string {
	var diff []string
	for item, owner := range b.items {
		if _, had := a.items[item]; !had && owner == "" {
			diff = append(diff, "new "+item)
		}
	}
	for key, before := range a.values {
		if after := b.values[key]; after != before {
			diff = append(diff, fmt.Sprintf("changed %s: %q -> %q", key, before, after))
		}
	}
	for key, after := range b.values {
		if _, had := a.values[key]; !had {
			diff = append(diff, fmt.Sprintf("new %s: %q", key, after))
		}
	}
	slices.Sort(diff)
	return diff
}

// SnapshotHost records the host's current state.
func SnapshotHost() (HostSnapshot, error) {
	procs, err := scanProcesses()
	if err != nil {
		return HostSnapshot{}, err
	}
	s := HostSnapshot{items: map[string]string{}, values: map[string]string{}}
	o := newOwnership(procs)
	collectors := []func(ownership) error{
		s.addProcesses, s.addMounts, s.addNetNS, s.addInterfaces, s.addCgroups, s.addCNIResults,
	}
	var errs []error
	for _, collect := range collectors {
		errs = append(errs, collect(o))
	}
	errs = append(errs, s.addIPTables(), s.addSysctlsAndPaths())
	if err := errors.Join(errs...); err != nil {
		return HostSnapshot{}, fmt.Errorf("snapshot host: %w", err)
	}
	return s, nil
}

// procInfo is what the snapshot knows of one process.
type procInfo struct {
	ppid    int
	comm    string
	cmdline string // arguments joined by spaces
	netns   string // /proc/<pid>/ns/net link
}

func scanProcesses() (map[int]procInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	procs := map[int]procInfo{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcess(pid); ok {
			procs[pid] = p
		}
	}
	return procs, nil
}

// readProcess reads one process; false when it has exited.
func readProcess(pid int) (procInfo, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	// The fields after the parenthesized comm: state, ppid, ...
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	// A zombie has exited and holds nothing; only its parent's wait is left.
	if len(fields) < 2 || fields[0] == "Z" {
		return procInfo{}, false
	}
	p := procInfo{}
	p.ppid, _ = strconv.Atoi(fields[1])
	comm, _ := os.ReadFile(dir + "/comm")
	p.comm = strings.TrimSpace(string(comm))
	cmdline, _ := os.ReadFile(dir + "/cmdline")
	p.cmdline = string(bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '}))
	p.netns, _ = os.Readlink(dir + "/ns/net")
	return p, true
}

// ownership says which live harness runtime accounts for what.
type ownership struct {
	procs     map[int]procInfo
	liveDirs  []string          // dirs of live runtimes
	procOwner map[int]string    // pid -> live runtime dir
	netnsUsed map[string]string // /proc/<pid>/ns/net link -> live runtime dir
}

// runtimeDirArg finds a runtime dir in a containerd command line (--config
// <dir>/config.toml) or a shim's (-address <dir>/containerd.sock).
var runtimeDirArg = regexp.MustCompile(`(?:--config[ =]|-address )(\S+)/(?:config\.toml|containerd\.sock)`)

// newOwnership finds the live runtimes: the dirs that containerd and shim
// command lines name (shims outlive a killed containerd) whose runtime
// still holds its network slot.
func newOwnership(procs map[int]procInfo) ownership {
	o := ownership{procs: procs, procOwner: map[int]string{}, netnsUsed: map[string]string{}}
	seen := map[string]bool{}
	for _, p := range procs {
		m := runtimeDirArg.FindStringSubmatch(p.cmdline)
		if m == nil || !watchedProcess(p.comm) || seen[m[1]] {
			continue
		}
		seen[m[1]] = true
		if runtimeSlotHeld(m[1]) {
			o.liveDirs = append(o.liveDirs, m[1])
		}
	}
	for pid, p := range procs {
		if dir := o.ownerOf(pid); dir != "" {
			o.procOwner[pid] = dir
			o.netnsUsed[p.netns] = dir
		}
	}
	return o
}

// runtimeSlotHeld reports whether the runtime in dir holds its network
// slot, read from the bridge its CNI conflist names.
func runtimeSlotHeld(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "cni", "net.d", "*.conflist"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var conf struct {
			Plugins []struct {
				Bridge string `json:"bridge"`
			} `json:"plugins"`
		}
		if json.Unmarshal(data, &conf) != nil {
			continue
		}
		for _, p := range conf.Plugins {
			if n, ok := bridgeSlot(p.Bridge); ok && slotHeld(n) {
				return true
			}
		}
	}
	return false
}

// bridgeSlot parses the slot number out of a harness bridge name.
func bridgeSlot(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "crien")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// ownerOf is the live runtime whose dir the process or one of its
// ancestors names (a container's parent is its shim, whose -address is in
// the runtime dir; a kubelet's --root-dir is too).
func (o ownership) ownerOf(pid int) string {
	for hop := 0; hop < 8 && pid > 1; hop++ {
		p, ok := o.procs[pid]
		if !ok {
			return ""
		}
		if dir := o.liveDirIn(p.cmdline); dir != "" {
			return dir
		}
		pid = p.ppid
	}
	return ""
}

// liveDirIn returns the live runtime dir that s is or names a path under.
func (o ownership) liveDirIn(s string) string {
	for _, dir := range o.liveDirs {
		if s == dir || strings.Contains(s, dir+"/") {
			return dir
		}
	}
	return ""
}

// ownerOfNetNS is the live runtime with a process in the network
// namespace bind-mounted at path.
func (o ownership) ownerOfNetNS(path string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return ""
	}
	return o.netnsUsed[fmt.Sprintf("net:[%d]", st.Ino)]
}

// ownerOfCgroup is the live runtime with a process in dir or below.
func (o ownership) ownerOfCgroup(dir string) string {
	owner := ""
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || owner != "" {
			return nil
		}
		data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, field := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(field); err == nil && o.procOwner[pid] != "" {
				owner = o.procOwner[pid]
				return filepath.SkipAll
			}
		}
		return nil
	})
	return owner
}

// watchedProcess says whether a process name is one a kubelet run starts.
func watchedProcess(comm string) bool {
	// comm is cut at 15 bytes: containerd-shim-runc-v2 reads containerd-shim.
	return comm == "kubelet" || comm == "containerd" || strings.HasPrefix(comm, "containerd-shim")
}

func (s HostSnapshot) addProcesses(o ownership) error {
	for pid, p := range o.procs {
		if watchedProcess(p.comm) {
			s.items[fmt.Sprintf("process %d %s", pid, p.comm)] = o.procOwner[pid]
		}
	}
	return nil
}

func (s HostSnapshot) addMounts(o ownership) error {
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		owner := o.liveDirIn(m.point)
		if owner == "" && m.fstype == "nsfs" {
			owner = o.ownerOfNetNS(m.point)
		}
		s.items["mount "+m.point] = owner
	}
	return nil
}

func (s HostSnapshot) addNetNS(o ownership) error {
	seen := map[string]bool{}
	for _, dir := range []string{"/run/netns", "/var/run/netns"} {
		real, err := filepath.EvalSymlinks(dir)
		if errors.Is(err, os.ErrNotExist) || seen[real] {
			continue
		}
		seen[real] = true
		entries, err := os.ReadDir(real)
		if err != nil {
			return fmt.Errorf("read %s: %w", real, err)
		}
		for _, e := range entries {
			p := filepath.Join(real, e.Name())
			s.items["netns "+p] = o.ownerOfNetNS(p)
		}
	}
	return nil
}

// addInterfaces records the network interfaces; a harness bridge of a held
// slot, and an interface enslaved to one, belong to a live runtime.
func (s HostSnapshot) addInterfaces(ownership) error {
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return fmt.Errorf("read /sys/class/net: %w", err)
	}
	for _, e := range entries {
		bridge := e.Name()
		if master, err := os.Readlink(filepath.Join("/sys/class/net", e.Name(), "master")); err == nil {
			bridge = filepath.Base(master)
		}
		owner := ""
		if n, ok := bridgeSlot(bridge); ok && slotHeld(n) {
			owner = "slot " + strconv.Itoa(n)
		}
		s.items["interface "+e.Name()] = owner
	}
	return nil
}

// addCgroups records each hierarchy's top-level dirs, and the QoS dirs of
// kubepods* dirs: a kubelet with the default cgroupRoot makes
// /kubepods/besteffort. Pod dirs are not recorded: a stopped pod of another
// test's runtime keeps an empty one until it is removed, which nothing here
// could tell from a leak; Runtime.Leftovers and Kubelet.Leftovers check
// their own. A kubelet cgroup root of a held slot, and any dir a live
// runtime's process is in, belong to a live runtime.
func (s HostSnapshot) addCgroups(o ownership) error {
	roots, err := cgroupRoots()
	if err != nil {
		return err
	}
	for _, root := range roots {
		tops, err := subdirs(root)
		if err != nil {
			return err
		}
		for _, top := range tops {
			s.addCgroup(o, filepath.Join(root, top), kubeletRootOwner(top))
			if strings.HasPrefix(top, "kubepods") {
				s.addQoSCgroups(o, filepath.Join(root, top))
			}
		}
	}
	return nil
}

func (s HostSnapshot) addQoSCgroups(o ownership, kubepods string) {
	children, _ := subdirs(kubepods)
	for _, c := range children {
		if c == "besteffort" || c == "burstable" || strings.HasSuffix(c, "-besteffort.slice") || strings.HasSuffix(c, "-burstable.slice") {
			s.addCgroup(o, filepath.Join(kubepods, c), "")
		}
	}
}

func (s HostSnapshot) addCgroup(o ownership, dir, owner string) {
	if owner == "" {
		owner = o.ownerOfCgroup(dir)
	}
	s.items["cgroup "+dir] = owner
}

// kubeletRootOwner says which held slot a top-level cgroup named like a
// kubelet cgroup root (crie-kubelet-<slot>) belongs to.
func kubeletRootOwner(name string) string {
	rest, ok := strings.CutPrefix(name, kubeletCgroupRootPrefix)
	if !ok {
		return ""
	}
	if n, err := strconv.Atoi(rest); err == nil && slotHeld(n) {
		return "slot " + rest
	}
	return ""
}

func subdirs(dir string) ([]string, error) {
	entries, err := readDirIfExists(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// addCNIResults records libcni's cache files: <network>-<id>-<ifname> per
// attachment and cni-loopback-<sandbox id>-lo for containerd's loopback.
func (s HostSnapshot) addCNIResults(o ownership) error {
	entries, err := readDirIfExists(cniResultsDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s.items["cni result "+e.Name()] = o.ownerOfCNIResult(e.Name())
	}
	return nil
}

// ownerOfCNIResult is the held slot whose network a result is of, or the
// live runtime with a task bundle for the sandbox a loopback result is of.
func (o ownership) ownerOfCNIResult(name string) string {
	if rest, ok := strings.CutPrefix(name, networkNamePrefix); ok {
		slot, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(slot); err == nil && slotHeld(n) {
			return "slot " + slot
		}
		return ""
	}
	rest, ok := strings.CutPrefix(name, "cni-loopback-")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "-")
	for _, dir := range o.liveDirs {
		bundles, _ := filepath.Glob(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", "*", id))
		if len(bundles) > 0 {
			return dir
		}
	}
	return ""
}

// readDirIfExists lists dir; a dir that does not exist is empty.
func readDirIfExists(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return entries, nil
}

// addIPTables records the chain names of every table iptables-save and
// ip6tables-save list (whichever backend the alternatives pick, as the
// kubelet's own iptables calls would).
func (s HostSnapshot) addIPTables() error {
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			s.values["tool "+tool] = "absent"
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, path).Output()
		cancel()
		if err != nil {
			s.values["tool "+tool] = "failed: " + err.Error()
			continue
		}
		s.values["tool "+tool] = "ok"
		maps.Copy(s.items, iptablesChains(tool, out))
	}
	return nil
}

// iptablesChains parses iptables-save output into "iptables <tool> <table>
// <chain>" items that no runtime accounts for.
func iptablesChains(tool string, out []byte) map[string]string {
	chains := map[string]string{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			chains[fmt.Sprintf("iptables %s %s %s", tool, table, name)] = ""
		}
	}
	return chains
}

func (s HostSnapshot) addSysctlsAndPaths() error {
	for _, name := range kubeletSysctls() {
		data, err := os.ReadFile("/proc/sys/" + name)
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", name, err)
		}
		s.values["sysctl "+strings.ReplaceAll(name, "/", ".")] = strings.TrimSpace(string(data))
	}
	for _, p := range kubeletHostPaths() {
		state := "absent"
		if exists(p) {
			state = "present"
		}
		s.values["path "+p] = state
	}
	return nil
}
