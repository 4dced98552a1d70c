package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	enricherv1 "github.com/cri-enricherd/cri-enricherd/api/v1"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// eventTypes maps the hub's event types to the proto enum.
var eventTypes = map[watch.EventType]enricherv1.EventType{
	watch.Added:   enricherv1.EventType_ADDED,
	watch.Updated: enricherv1.EventType_UPDATED,
	watch.Deleted: enricherv1.EventType_DELETED,
	watch.Synced:  enricherv1.EventType_SYNCED,
}

// eventView converts a hub event to its gRPC message, which shares the
// record's maps and slices (see recordView).
func eventView(ev watch.Event) *enricherv1.WatchEvent {
	out := &enricherv1.WatchEvent{Type: eventTypes[ev.Type], Revision: ev.Revision}
	if ev.Record != nil {
		out.Record = recordView(ev.Record)
	}
	return out
}

// recordView converts a record to a message that shares the record's maps,
// slices and user ID with it. The server's answers are marshalled and
// dropped, never changed, and cached records are immutable, so copying them
// for every answer (a third of the conversion's allocations) bought nothing.
func recordView(rec *enrich.Record) *enricherv1.Record {
	return &enricherv1.Record{
		Id:           rec.ID,
		ShortId:      rec.ShortID,
		Name:         rec.Name,
		Attempt:      rec.Attempt,
		State:        rec.State,
		Runtime:      rec.Runtime,
		Node:         rec.Node,
		CreatedAt:    timestamp(rec.CreatedAt),
		StartedAt:    timestamp(rec.StartedAt),
		FinishedAt:   timestamp(rec.FinishedAt),
		DeletedAt:    timestamp(rec.DeletedAt),
		Image:        &enricherv1.Image{Name: rec.Image.Name, Resolved: rec.Image.Resolved, Ref: rec.Image.Ref, Id: rec.Image.ID},
		Pid:          int32(rec.PID), // PIDs are at most 2^22
		Privileged:   rec.Privileged,
		UserUid:      rec.UserUID,
		Labels:       rec.Labels,
		Annotations:  rec.Annotations,
		Env:          rec.Env,
		LogPath:      rec.LogPath,
		CgroupPath:   rec.CgroupPath,
		CgroupId:     rec.CgroupID,
		Mounts:       mounts(rec.Mounts),
		Resources:    resources(rec.Resources),
		IsPodSandbox: rec.IsPodSandbox,
		Pod:          podView(rec.Pod),
		PodSource:    string(rec.PodSource),
		Trimmed:      int32(rec.Trimmed), // bounded by the export caps
		Partial:      rec.Partial,
	}
}

// podView is recordView's pod: it shares p's maps and slices.
func podView(p *enrich.Pod) *enricherv1.Pod {
	if p == nil {
		return nil
	}
	return &enricherv1.Pod{
		SandboxId:      p.SandboxID,
		Name:           p.Name,
		Namespace:      p.Namespace,
		Uid:            p.UID,
		Attempt:        p.Attempt,
		State:          p.State,
		Labels:         p.Labels,
		Annotations:    p.Annotations,
		Ip:             p.IP,
		AdditionalIps:  p.AdditionalIPs,
		CniResult:      p.CNIResult,
		HostNetwork:    p.HostNetwork,
		HostPid:        p.HostPID,
		HostIpc:        p.HostIPC,
		RuntimeHandler: p.RuntimeHandler,
		CreatedAt:      timestamp(p.CreatedAt),
	}
}

func podsToProto(pods []query.PodRecords) []*enricherv1.PodRecords {
	out := make([]*enricherv1.PodRecords, len(pods))
	for i, p := range pods {
		item := &enricherv1.PodRecords{Pod: podView(p.Pod), Containers: recordsToProto(p.Containers)}
		if p.Sandbox != nil {
			item.Sandbox = recordView(p.Sandbox)
		}
		out[i] = item
	}
	return out
}

func recordsToProto(recs []enrich.Record) []*enricherv1.Record {
	out := make([]*enricherv1.Record, len(recs))
	for i := range recs {
		out[i] = recordView(&recs[i])
	}
	return out
}

func timestamp(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

func mounts(ms []enrich.Mount) []*enricherv1.Mount {
	if ms == nil {
		return nil
	}
	out := make([]*enricherv1.Mount, len(ms))
	for i, m := range ms {
		out[i] = &enricherv1.Mount{HostPath: m.HostPath, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly, Propagation: m.Propagation}
	}
	return out
}

func resources(r enrich.Resources) *enricherv1.Resources {
	return &enricherv1.Resources{
		CpuShares: r.CPUShares, CpuQuota: r.CPUQuota, CpuPeriod: r.CPUPeriod,
		CpusetCpus: r.CpusetCPUs, CpusetMems: r.CpusetMems, MemoryLimitInBytes: r.MemoryLimitInBytes,
		OomScoreAdj: r.OOMScoreAdj,
	}
}
