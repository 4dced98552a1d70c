package query

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
)

// Records is the cache as the query layer reads it.
type Records interface {
	Get(idOrPrefix string) (enrich.Record, error)
	List(f cache.Filter) []enrich.Record
	BySandbox(sandboxID string) []enrich.Record
	SandboxByIP(ip string) (enrich.Record, bool)
	ByCgroupID(cgroupID uint64) (enrich.Record, bool)
}

// Resolver looks up a full ID the cache does not hold yet.
type Resolver interface {
	Lookup(ctx context.Context, id string) (enrich.Record, error)
}

// PIDResolver maps a PID to its container cgroup.
type PIDResolver interface {
	Resolve(pid int) (string, cgroup.Ref, error)
}

// Query answers the questions both APIs ask. It reads the cache, asks the
// lookup engine for full IDs the cache does not hold yet, and reports each
// refusal as an *Error.
type Query struct {
	records         Records
	resolver        Resolver
	pids            PIDResolver
	log             *zap.Logger
	onDemandTimeout time.Duration
}

// New returns a Query. resolver may be nil (no on-demand lookups);
// onDemandTimeout <= 0 means 2s: it bounds how long a question about an
// unknown full ID waits for its lookup, so that a seconds-old container is
// answered, not refused.
func New(records Records, resolver Resolver, pids PIDResolver, log *zap.Logger, onDemandTimeout time.Duration) *Query {
	if onDemandTimeout <= 0 {
		onDemandTimeout = 2 * time.Second
	}
	return &Query{records: records, resolver: resolver, pids: pids, log: log, onDemandTimeout: onDemandTimeout}
}

// Container returns the record with this full ID or unique prefix.
func (q *Query) Container(ctx context.Context, ref string) (enrich.Record, error) {
	if !id.IsPrefix(ref) {
		return enrich.Record{}, failf(CodeInvalid, "malformed id %q: want 12 to 64 lowercase hex characters", Truncate(ref))
	}
	return q.find(ctx, ref)
}

// find answers from the cache, or looks a full ID up on demand.
func (q *Query) find(ctx context.Context, id string) (enrich.Record, error) {
	rec, err := q.records.Get(id)
	switch {
	case err == nil:
		return rec, nil
	case errors.Is(err, cache.ErrAmbiguous):
		return rec, &Error{Code: CodeAmbiguous, Msg: err.Error()}
	case len(id) < 64 || q.resolver == nil:
		return rec, failf(CodeNotFound, "no container or sandbox with id %s", id)
	}
	ctx, cancel := context.WithTimeout(ctx, q.onDemandTimeout)
	defer cancel()
	rec, err = q.resolver.Lookup(ctx, id)
	switch {
	case err == nil:
		return rec, nil
	case errors.Is(err, lookup.ErrNotFound):
		return rec, failf(CodeNotFound, "no container or sandbox with id %s", id)
	case errors.Is(err, context.DeadlineExceeded):
		return rec, failf(CodeTimeout, "lookup of %s did not finish within %s", id, q.onDemandTimeout)
	case errors.Is(err, lookup.ErrRateLimited):
		return rec, failf(CodeTooMany, "no container or sandbox with id %s is cached, and lookups of unknown ids are over their rate limit (api.ondemand_rate): try again later", id)
	}
	q.log.Debug("on-demand lookup failed", zap.String("id", id), zap.Error(err))
	return rec, failf(CodeLookupFailed, "runtime lookup of %s failed: %v", id, err)
}

// ContainerByPID returns the record of the container process pid lives in.
func (q *Query) ContainerByPID(ctx context.Context, pid int) (enrich.Record, error) {
	if pid <= 0 || pid > MaxPID {
		return enrich.Record{}, failf(CodeInvalid, "malformed pid %d: want an integer from 1 to %d", pid, MaxPID)
	}
	_, ref, err := q.pids.Resolve(pid)
	switch {
	case errors.Is(err, cgroup.ErrNoContainer):
		return enrich.Record{}, failf(CodeNotFound, "pid %d is not in a container", pid)
	case errors.Is(err, fs.ErrNotExist):
		return enrich.Record{}, failf(CodeNotFound, "no process with pid %d", pid)
	case err != nil:
		return enrich.Record{}, failf(CodeInternal, "reading cgroup of pid %d: %v", pid, err)
	}
	return q.find(ctx, ref.ContainerID)
}

// ContainerByCgroupID returns the record whose cgroup has this cgroup v2
// ID now. A removed cgroup's ID answers nothing: the kernel may have
// re-used the number for a new directory.
func (q *Query) ContainerByCgroupID(id uint64) (enrich.Record, error) {
	if id == 0 {
		return enrich.Record{}, failf(CodeInvalid, "malformed cgroup id 0: cgroup ids are positive")
	}
	rec, ok := q.records.ByCgroupID(id)
	if !ok {
		return enrich.Record{}, failf(CodeNotFound, "no live container or sandbox has cgroup id %d", id)
	}
	return rec, nil
}

// maxCgroupPath bounds a cgroup path: PATH_MAX.
const maxCgroupPath = 4096

// ContainerByCgroup returns the record of the container a cgroup path
// belongs to (see cgroup.ParsePath for the layouts understood).
func (q *Query) ContainerByCgroup(ctx context.Context, path string) (enrich.Record, error) {
	if err := checkCgroupPath(path); err != nil {
		return enrich.Record{}, err
	}
	ref, ok := cgroup.ParsePath(path)
	if !ok {
		return enrich.Record{}, failf(CodeNotFound, "cgroup %s names no container", Truncate(path))
	}
	return q.find(ctx, ref.ContainerID)
}

func checkCgroupPath(path string) error {
	switch {
	case len(path) > maxCgroupPath:
		return failf(CodeInvalid, "malformed cgroup path: %d bytes, want at most %d", len(path), maxCgroupPath)
	case !strings.HasPrefix(path, "/"):
		return failf(CodeInvalid, "malformed cgroup path %q: want an absolute path starting with /", Truncate(path))
	case strings.IndexByte(path, 0) >= 0:
		return failf(CodeInvalid, "malformed cgroup path %q: contains NUL", Truncate(path))
	}
	for elem := range strings.SplitSeq(path, "/") {
		if elem == ".." {
			return failf(CodeInvalid, "malformed cgroup path %q: contains ..", Truncate(path))
		}
	}
	return nil
}

// Containers returns the records f selects. A SandboxID shorter than a full
// ID is a prefix, as crictl prints them: it must name one sandbox (several
// are a CodeAmbiguous error; none selects nothing).
func (q *Query) Containers(f cache.Filter) ([]enrich.Record, error) {
	if f.SandboxID != "" && len(f.SandboxID) < id.Len {
		id, err := q.sandboxByPrefix(f.SandboxID)
		if err != nil || id == "" {
			return []enrich.Record{}, err
		}
		f.SandboxID = id
	}
	recs := q.records.List(f)
	if recs == nil {
		recs = []enrich.Record{}
	}
	return recs, nil
}

func (q *Query) sandboxByPrefix(prefix string) (string, error) {
	rec, err := q.records.Get(prefix)
	switch {
	case errors.Is(err, cache.ErrAmbiguous):
		return "", &Error{Code: CodeAmbiguous, Msg: "sandbox: " + err.Error()}
	case err != nil || !rec.IsPodSandbox:
		return "", nil
	}
	return rec.ID, nil
}

// PodByIP returns the live pod that holds ip now: a ready sandbox the
// runtime reports the address for, with its live containers. A stopped
// pod never answers: its address may already be another pod's.
func (q *Query) PodByIP(raw string) (PodRecords, error) {
	addr, err := netip.ParseAddr(raw)
	if err != nil || addr.Zone() != "" {
		return PodRecords{}, failf(CodeInvalid, "malformed ip %q: want an IPv4 or IPv6 address such as 10.0.0.7 or fd00::7", Truncate(raw))
	}
	sb, ok := q.records.SandboxByIP(addr.Unmap().String())
	if !ok {
		return PodRecords{}, failf(CodeNotFound, "no live pod holds ip %s", addr)
	}
	return PodRecords{Pod: sb.Pod, Sandbox: &sb, Containers: q.records.BySandbox(sb.ID)}, nil
}

// PodRecords is one pod with its sandbox and containers. Sandbox is nil
// when the daemon knows the pod only from its containers.
type PodRecords struct {
	Pod        *enrich.Pod     `json:"pod"`
	Sandbox    *enrich.Record  `json:"sandbox"`
	Containers []enrich.Record `json:"containers"`
}

// Pods groups the records f selects by pod, in the order of List (so by
// namespace and pod name). A pod is one item across its sandboxes, as in
// Kubernetes (enrich.PodKey): a pod whose sandbox the kubelet re-created
// shows its current sandbox (enrich.MoreCurrent) and the containers of
// every sandbox it had, each naming its own. Records without pod data
// belong to no pod and are left out.
func (q *Query) Pods(f cache.Filter) []PodRecords {
	f.ExcludeSandboxes = false
	out := []PodRecords{}
	index := map[string]int{}
	for _, rec := range q.records.List(f) {
		if rec.Pod == nil {
			continue
		}
		key := enrich.PodKey(rec.Pod)
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, PodRecords{Pod: rec.Pod, Containers: []enrich.Record{}})
		}
		switch {
		case !rec.IsPodSandbox:
			out[i].Containers = append(out[i].Containers, rec)
		case out[i].Sandbox == nil || enrich.MoreCurrent(rec.Pod, out[i].Sandbox.Pod):
			out[i].Pod, out[i].Sandbox = rec.Pod, &rec
		}
	}
	return out
}
