package lookup

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// Runtime is what the engine asks of the CRI runtime. Every call is verbose
// where the RPC has a verbose form; the implementation applies its own
// per-call timeout.
type Runtime interface {
	RuntimeName() string
	Version(ctx context.Context) (*runtimeapi.VersionResponse, error)
	ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatusResponse, error)
	PodSandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatusResponse, error)
	// ListContainers and ListPodSandbox list what filter selects (nil:
	// everything). A List filtered by ID is the cheap way to learn one
	// object's state: no verbose info, no CNI result.
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
}

// Store is where finished records go. *cache.Cache implements it.
type Store interface {
	Put(rec enrich.Record)
	Update(id string, fn func(enrich.Record) enrich.Record) bool
	CgroupSeen(id string, cgroupID uint64)
	CgroupGone(id string)
	Get(idOrPrefix string) (enrich.Record, error)
	GetSandbox(sandboxID string) (enrich.Record, bool)
	MarkDeleted(id string, at time.Time) bool
	List(f cache.Filter) []enrich.Record
}

// Recorder is told what the engine did; the metrics package implements it.
type Recorder interface {
	LookupDone(result string)
	LookupFailed(stage, reason string)
	FallbackHit(source string)
	Retry(rpc, reason string)
	// Waited counts IDs whose status was not asked yet because the
	// runtime did not report them started (not_started) or known
	// (not_registered) yet; cheap List calls told when to ask.
	Waited(reason string)
	// OnDemandRefused counts API lookups refused by the on-demand bound.
	OnDemandRefused()
	Trimmed(n int)
	RelistDone(ok bool, added, deleted int)
	Synced(at time.Time)
}

// The lookup results, a bounded label set.
const (
	ResultContainer = "container"
	ResultSandbox   = "sandbox"
	ResultDeleted   = "deleted"
	ResultNotFound  = "not_found"
	ResultError     = "error"
)

// The failing stages of a lookup.
const (
	StageContainerStatus  = "container_status"
	StagePodSandboxStatus = "pod_sandbox_status"
	StageParse            = "parse"
	StageList             = "list"
)

var _ Store = (*cache.Cache)(nil)
