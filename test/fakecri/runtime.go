package fakecri

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The RPC names Calls, Inject and Delay take: the gRPC method names, as the
// CRI client's metrics spell them.
const (
	RPCVersion            = "Version"
	RPCListContainers     = "ListContainers"
	RPCListPodSandbox     = "ListPodSandbox"
	RPCContainerStatus    = "ContainerStatus"
	RPCPodSandboxStatus   = "PodSandboxStatus"
	RPCGetContainerEvents = "GetContainerEvents"
)

// EventsMode says how GetContainerEvents answers.
type EventsMode int

const (
	// EventsUnimplemented answers Unimplemented, like containerd 1.6.
	EventsUnimplemented EventsMode = iota
	// EventsStream streams the events of the fake's mutations until the
	// client goes away, like containerd 2.x.
	EventsStream
	// EventsEOF ends the stream at once with no event, like CRI-O with
	// enable_pod_events = false.
	EventsEOF
)

// PodSpec describes a pod for AddPod. Empty fields get kubelet-like
// defaults.
type PodSpec struct {
	Name, Namespace, UID string            // default pod-<n>, "default", a deterministic UUID
	ID                   string            // the sandbox's ID; default a deterministic one (a caller that makes the cgroup first needs it before AddPod)
	Labels               map[string]string // the pod's labels; default app and pod-template-hash
	Annotations          map[string]string // extra pod annotations
	HostNetwork          bool              // no CNI result and no pod IP
	Containers           []ContainerSpec   // started at once; default none
}

// ContainerSpec describes a container for AddPod or CreateContainer.
type ContainerSpec struct {
	Name        string            // default c<n>
	Image       string            // default docker.io/library/busybox:1.36
	Labels      map[string]string // extra labels beside the kubelet's four
	Annotations map[string]string // extra annotations beside the kubelet's
}

type sandbox struct {
	id        string
	spec      PodSpec
	state     runtimeapi.PodSandboxState
	createdAt int64
	pid       int
	ip        string
}

type container struct {
	id, sandboxID string
	spec          ContainerSpec
	state         runtimeapi.ContainerState
	createdAt     int64
	startedAt     int64
	finishedAt    int64
	pid           int
}

type callKey struct{ rpc, id string }

// Runtime is the fake runtime's state. Create it with New; every method is
// safe for concurrent use.
type Runtime struct {
	mu         sync.Mutex
	seq        int
	name, ver  string
	sandboxes  map[string]*sandbox
	containers map[string]*container
	calls      map[string]int
	callsFor   map[callKey]int
	inject     map[string]func(id string) error
	delay      map[string]time.Duration
	info       map[string]string
	editC      map[string]func(*runtimeapi.ContainerStatusResponse)
	editS      map[string]func(*runtimeapi.PodSandboxStatusResponse)
	events     EventsMode
	subs       map[*subscriber]struct{}
	dropped    int

	ctrdOn      bool // serve containerd's own event service
	ctrdSubs    map[*ctrdSub]struct{}
	ctrdFilters []string
}

// New returns an empty runtime named containerd whose event stream is
// Unimplemented.
func New() *Runtime {
	return &Runtime{
		name: "containerd", ver: "v1.7.0-fakecri",
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		calls:      map[string]int{},
		callsFor:   map[callKey]int{},
		inject:     map[string]func(string) error{},
		delay:      map[string]time.Duration{},
		info:       map[string]string{},
		editC:      map[string]func(*runtimeapi.ContainerStatusResponse){},
		editS:      map[string]func(*runtimeapi.PodSandboxStatusResponse){},
		subs:       map[*subscriber]struct{}{},
		ctrdSubs:   map[*ctrdSub]struct{}{},
	}
}

// ID returns a deterministic 64-hex ID derived from seed: handy for IDs the
// runtime must not know.
func ID(seed string) string {
	sum := sha256.Sum256([]byte("fakecri/" + seed))
	return hex.EncodeToString(sum[:])
}

func podUID(seed string) string {
	h := ID("uid/" + seed)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// SetVersion changes the runtime's name and version in Version answers.
func (r *Runtime) SetVersion(name, version string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.name, r.ver = name, version
}

// AddPod creates a ready sandbox and starts its containers, emitting the
// events a runtime would, and returns the sandbox's and the containers' IDs.
func (r *Runtime) AddPod(spec PodSpec) (sandboxID string, containerIDs []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	n := r.seq
	spec = podDefaults(spec, n)
	sb := &sandbox{
		id: spec.ID, spec: spec,
		state: runtimeapi.PodSandboxState_SANDBOX_READY, createdAt: time.Now().UnixNano(),
		pid: 10000 + n,
	}
	if !spec.HostNetwork {
		sb.ip = fmt.Sprintf("10.88.%d.%d", (n/250)%250, n%250+2)
	}
	r.sandboxes[sb.id] = sb
	r.publishLocked(sb.id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	r.publishLocked(sb.id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	r.publishContainerdLocked("/containers/create", "containerd.events.ContainerCreate", sb.id, 0)
	r.publishContainerdLocked("/tasks/start", "containerd.events.TaskStart", sb.id, sb.pid)
	for _, cs := range spec.Containers {
		id := r.createLocked(sb, cs)
		r.startLocked(r.containers[id])
		containerIDs = append(containerIDs, id)
	}
	return sb.id, containerIDs
}

func podDefaults(spec PodSpec, n int) PodSpec {
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("pod-%d", n)
	}
	if spec.Namespace == "" {
		spec.Namespace = "default"
	}
	if spec.UID == "" {
		spec.UID = podUID(fmt.Sprint(n))
	}
	if spec.ID == "" {
		spec.ID = ID(fmt.Sprintf("sandbox/%d", n))
	}
	spec.Labels, spec.Annotations = maps.Clone(spec.Labels), maps.Clone(spec.Annotations) // the caller keeps its maps
	if spec.Labels == nil {
		spec.Labels = map[string]string{"app": spec.Name, "pod-template-hash": ID(spec.Name)[:10]}
	}
	spec.Containers = append([]ContainerSpec(nil), spec.Containers...)
	return spec
}

// CreateContainer creates a container in the sandbox in state created (no
// process yet) and returns its ID, or "" if the sandbox does not exist.
func (r *Runtime) CreateContainer(sandboxID string, spec ContainerSpec) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb := r.sandboxes[sandboxID]
	if sb == nil {
		return ""
	}
	return r.createLocked(sb, spec)
}

func (r *Runtime) createLocked(sb *sandbox, spec ContainerSpec) string {
	r.seq++
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("c%d", r.seq)
	}
	if spec.Image == "" {
		spec.Image = "docker.io/library/busybox:1.36"
	}
	spec.Labels, spec.Annotations = maps.Clone(spec.Labels), maps.Clone(spec.Annotations)
	c := &container{
		id: ID(fmt.Sprintf("container/%d", r.seq)), sandboxID: sb.id, spec: spec,
		state: runtimeapi.ContainerState_CONTAINER_CREATED, createdAt: time.Now().UnixNano(),
	}
	r.containers[c.id] = c
	r.publishLocked(c.id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	r.publishContainerdLocked("/containers/create", "containerd.events.ContainerCreate", c.id, 0)
	return c.id
}

// PID is the init process the runtime reports for a container: 0 before it
// started and after it stopped, as containerd reports it.
func (r *Runtime) PID(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.containers[id]; c != nil {
		return c.pid
	}
	return 0
}

// StartContainer moves a created container to running and reports whether
// it could.
func (r *Runtime) StartContainer(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	if c == nil || c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return false
	}
	r.startLocked(c)
	return true
}

func (r *Runtime) startLocked(c *container) {
	r.seq++
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.startedAt = time.Now().UnixNano()
	c.pid = 20000 + r.seq
	r.publishLocked(c.id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	r.publishContainerdLocked("/tasks/start", "containerd.events.TaskStart", c.id, c.pid)
}

// StopContainer moves a running container to exited and reports whether it
// could.
func (r *Runtime) StopContainer(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.containers[id]
	if c == nil || c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return false
	}
	r.stopLocked(c)
	return true
}

func (r *Runtime) stopLocked(c *container) {
	c.state = runtimeapi.ContainerState_CONTAINER_EXITED
	c.finishedAt = time.Now().UnixNano()
	c.pid = 0
	r.publishLocked(c.id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// RemoveContainer stops (if running) and deletes a container, and reports
// whether it existed.
func (r *Runtime) RemoveContainer(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removeLocked(id)
}

func (r *Runtime) removeLocked(id string) bool {
	c := r.containers[id]
	if c == nil {
		return false
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.stopLocked(c)
	}
	// The DELETED event still carries the last status, so publish first.
	r.publishLocked(id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	delete(r.containers, id)
	r.forgetLocked(id)
	return true
}

// RemovePod removes the pod's containers, stops and deletes its sandbox,
// and reports whether the sandbox existed.
func (r *Runtime) RemovePod(sandboxID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb := r.sandboxes[sandboxID]
	if sb == nil {
		return false
	}
	for id, c := range r.containers {
		if c.sandboxID == sandboxID {
			r.removeLocked(id)
		}
	}
	sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	r.publishLocked(sandboxID, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	r.publishLocked(sandboxID, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	delete(r.sandboxes, sandboxID)
	r.forgetLocked(sandboxID)
	return true
}

// forgetLocked drops per-ID overrides so a long churn does not accumulate
// them; call counts are kept, they are what tests assert.
func (r *Runtime) forgetLocked(id string) {
	delete(r.info, id)
	delete(r.editC, id)
	delete(r.editS, id)
}

// Len returns the number of sandboxes and containers the runtime holds.
func (r *Runtime) Len() (sandboxes, containers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sandboxes), len(r.containers)
}

// Calls returns how many times rpc was called (every call counts, failed,
// delayed or injected ones included).
func (r *Runtime) Calls(rpc string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[rpc]
}

// CallsFor returns how many times rpc was called for one container or
// sandbox ID: the ID of a status call, the ID filter of a List call (""
// for a List of the whole node), as harness.CRIProxy counts them.
func (r *Runtime) CallsFor(rpc, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.callsFor[callKey{rpc, id}]
}

// countList counts a List call under its ID filter for CallsFor. It is
// apart from enter, whose injected faults see "" for every List.
func (r *Runtime) countList(rpc, filterID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.callsFor[callKey{rpc, filterID}]++
}

// ResetCalls forgets every call count.
func (r *Runtime) ResetCalls() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.calls)
	clear(r.callsFor)
}

// Inject makes rpc call fn with the requested ID ("" for Version and the
// lists) before answering; a non-nil error (use status.Error) is returned to
// the client instead of the answer. A nil fn removes the injection.
func (r *Runtime) Inject(rpc string, fn func(id string) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fn == nil {
		delete(r.inject, rpc)
		return
	}
	r.inject[rpc] = fn
}

// Delay holds every call of rpc back for d (or until the client gives up)
// before answering. Zero removes the delay.
func (r *Runtime) Delay(rpc string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay[rpc] = d
}

// SetInfo makes verbose status answers for id carry raw as info["info"]
// instead of the JSON the fake builds: malformed JSON, a wrong shape, an
// empty string.
func (r *Runtime) SetInfo(id, raw string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.info[id] = raw
}

// EditContainerStatus makes ContainerStatus answers for id pass through fn
// before they are sent, to drop or change fields (fn may set Status to nil).
func (r *Runtime) EditContainerStatus(id string, fn func(*runtimeapi.ContainerStatusResponse)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.editC[id] = fn
}

// EditSandboxStatus makes PodSandboxStatus answers for id pass through fn
// before they are sent.
func (r *Runtime) EditSandboxStatus(id string, fn func(*runtimeapi.PodSandboxStatusResponse)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.editS[id] = fn
}

// SetEvents chooses how GetContainerEvents answers from now on. Streams
// already open stay open; CloseEventStreams ends them.
func (r *Runtime) SetEvents(mode EventsMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = mode
}
