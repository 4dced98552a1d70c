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
	ListContainers(ctx context.Context) ([]*runtimeapi.Container, error)
	ListPodSandbox(ctx context.Context) ([]*runtimeapi.PodSandbox, error)
}

// Store is where finished records go. *cache.Cache implements it.
type Store interface {
	Put(rec enrich.Record)
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
