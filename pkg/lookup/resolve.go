package lookup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/id"
)

// resolve looks id up with retries of transient failures and stores the
// result.
func (e *Engine) resolve(ctx context.Context, id string, hint Hint) (enrich.Record, error) {
	var rec enrich.Record
	var err error
	for try := 0; ; try++ {
		// Another lookup (a container fetching its pod's sandbox) may have
		// cached this ID meanwhile: then there is nothing left to ask.
		if cached, ok := e.cached(id, hint); ok {
			return cached, nil
		}
		rec, err = e.resolveOnce(ctx, id, hint)
		reason, again := e.retryable(err)
		if !again || try >= e.opts.MaxRetries || ctx.Err() != nil {
			break
		}
		e.rec.Retry(retryRPC(err), reason)
		if e.sleepBackoff(ctx, try) != nil {
			break
		}
	}
	return e.settle(id, rec, err, hint)
}

func (e *Engine) cached(id string, hint Hint) (enrich.Record, bool) {
	if hint.Force || hint.Gone {
		return enrich.Record{}, false
	}
	rec, err := e.store.Get(id)
	return rec, err == nil && rec.ID == id
}

// settle records the outcome of a lookup.
func (e *Engine) settle(id string, rec enrich.Record, err error, hint Hint) (enrich.Record, error) {
	switch {
	case err == nil:
		e.remember(id, true)
		e.store.Put(rec)
		e.rec.LookupDone(resultOf(rec))
		if hint.Gone && !hint.Force && (rec.State == "running" || rec.State == "created" || rec.State == "ready") {
			// The cgroup went first; the exit is recorded a moment later.
			e.waits.add(id, Hint{Gone: true, Sandbox: rec.IsPodSandbox}, reasonNotStopped)
		}
		if rec.IsPodSandbox {
			e.waits.recheck(id, rec.State != "notready" || rec.Pod == nil || rec.Pod.IP == "")
		}
		return rec, nil
	case isNotFound(err) && hint.Gone:
		e.store.MarkDeleted(id, e.opts.Now())
		e.rec.LookupDone(ResultDeleted)
		return enrich.Record{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	case isNotFound(err) && hint.Exists && !hint.Force:
		// Seen to exist, not known to the runtime yet: wait for it to
		// list the ID rather than asking its status again and again.
		e.waits.add(id, hint, reasonNotRegistered)
		return enrich.Record{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	case isNotFound(err):
		e.remember(id, false)
		e.rec.LookupDone(ResultNotFound)
		return enrich.Record{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	e.rec.LookupDone(ResultError)
	e.log.Debug("lookup failed", zap.String("id", id), zap.Error(err))
	return enrich.Record{}, err
}

func resultOf(rec enrich.Record) string {
	if rec.IsPodSandbox {
		return ResultSandbox
	}
	return ResultContainer
}

// resolveOnce asks the runtime what id is. A sandbox is an ID the runtime
// answers PodSandboxStatus for; ContainerStatus answering NotFound alone never
// makes an ID a sandbox, and a timeout never does.
func (e *Engine) resolveOnce(ctx context.Context, id string, hint Hint) (enrich.Record, error) {
	reuse := !hint.Force && !hint.Gone
	if hint.created != nil && reuse {
		return e.partial(ctx, hint.created)
	}
	if hint.Sandbox || hint.NewPod {
		rec, err := e.fetchSandbox(ctx, id, reuse)
		if !isNotFound(err) || hint.Sandbox {
			return rec, err
		}
		return e.fetchContainer(ctx, id)
	}
	rec, err := e.fetchContainer(ctx, id)
	if !isNotFound(err) {
		return rec, err
	}
	if sb, sbErr := e.fetchSandbox(ctx, id, reuse); !isNotFound(sbErr) {
		return sb, sbErr
	}
	return rec, err
}

// fetchContainer asks ContainerStatus and attaches the pod.
func (e *Engine) fetchContainer(ctx context.Context, id string) (enrich.Record, error) {
	if err := e.limit.Wait(ctx); err != nil {
		return enrich.Record{}, err
	}
	resp, err := e.rt.ContainerStatus(ctx, id)
	if err != nil {
		e.rec.LookupFailed(StageContainerStatus, reasonOf(err))
		return enrich.Record{}, &rpcError{rpc: "ContainerStatus", err: err}
	}
	return e.containerRecord(ctx, id, resp, "", false)
}

// partial makes the record of a container that has not started from its
// non-verbose status (a CREATED event's, a listed one's): no status call,
// and one PodSandboxStatus per pod as ever, which it does not wait for.
func (e *Engine) partial(ctx context.Context, c *createdStatus) (enrich.Record, error) {
	return e.containerRecord(ctx, c.status.GetId(), &runtimeapi.ContainerStatusResponse{Status: c.status}, c.sandboxID, true)
}

// containerRecord maps a ContainerStatus answer and attaches the pod;
// sandboxID names the container's sandbox when the answer does not.
//
// With early (a created container's first record), it does not wait for
// its pod's PodSandboxStatus: when the sandbox is not cached yet (the first
// containers of a new pod), the container's own pod labels stand in
// (pod_source container_labels, no IP), the sandbox's lookup is queued
// beside it, and the cache copies the sandbox's pod into the record when
// that lands (enrich.FollowSandbox). On containerd 1.6 that
// PodSandboxStatus took up to ~25 ms right after RunPodSandbox, and every
// first container of a pod waited for it (BENCHMARKS.md).
func (e *Engine) containerRecord(ctx context.Context, cid string, resp *runtimeapi.ContainerStatusResponse, sandboxID string, early bool) (enrich.Record, error) {
	res, err := enrich.Container(resp, e.runtimeName(ctx), e.opts.Enrich)
	if err != nil {
		e.rec.LookupFailed(StageParse, parseReason(err))
		e.log.Warn("malformed container status", zap.String("id", cid), zap.Error(err))
		return enrich.Record{}, err
	}
	if res.Record.IsPodSandbox {
		// The runtime answered ContainerStatus for a pause container (cri-
		// dockerd can; containerd answers NotFound): its record is the
		// sandbox's own, from PodSandboxStatus, as on every other runtime.
		return e.fetchSandbox(ctx, cid, false)
	}
	if res.Trimmed > 0 {
		e.rec.Trimmed(res.Trimmed)
	}
	if res.SandboxID == "" && id.IsFull(sandboxID) {
		res.SandboxID = sandboxID
		if res.LabelPod != nil {
			res.LabelPod.SandboxID = sandboxID
		}
	}
	pod, source, deferred := e.podFor(ctx, res, early)
	rec := enrich.AttachPod(res.Record, pod, source)
	if source != enrich.PodSourceSandboxStatus && !deferred {
		e.rec.FallbackHit(string(source))
	}
	return rec, nil
}

// podFor finds the pod of a container: the cached sandbox (one
// PodSandboxStatus per pod), else a fresh PodSandboxStatus, else the
// fallback chain, saying which it used. With early and no cached sandbox,
// it queues the sandbox's lookup instead of waiting for it and returns the
// container's label pod; deferred says so (nothing failed: no fallback).
func (e *Engine) podFor(ctx context.Context, res enrich.ContainerResult, early bool) (pod *enrich.Pod, source enrich.PodSource, deferred bool) {
	cached, haveCached := enrich.Record{}, false
	if res.SandboxID != "" {
		cached, haveCached = e.store.GetSandbox(res.SandboxID)
		if haveCached && cached.Pod != nil && !e.isStale(res.SandboxID) {
			return cached.Pod, enrich.PodSourceSandboxStatus, false
		}
		if early && !haveCached && res.LabelPod != nil {
			e.Submit(res.SandboxID, Hint{Sandbox: true, Exists: true})
			return res.LabelPod, enrich.PodSourceContainerLabels, true
		}
		sb, err := e.fetchSandbox(ctx, res.SandboxID, true)
		if err == nil && sb.Pod != nil {
			return sb.Pod, enrich.PodSourceSandboxStatus, false
		}
	}
	switch {
	case haveCached && cached.Pod != nil:
		return cached.Pod, enrich.PodSourceSandboxCache, false
	case res.LabelPod != nil:
		return res.LabelPod, enrich.PodSourceContainerLabels, false
	}
	return nil, enrich.PodSourceNone, false
}

// fetchSandbox asks PodSandboxStatus once for all callers wanting the same
// sandbox at the same time, and caches the sandbox's record. With reuse, a
// record cached after the caller looked (a pod's containers race its
// sandbox's own lookup) is taken instead of asking again; a gone or forced
// lookup passes false and always asks, never sharing a reused answer.
func (e *Engine) fetchSandbox(ctx context.Context, id string, reuse bool) (enrich.Record, error) {
	key := id
	if !reuse {
		key = "fresh:" + id
	}
	v, err, _ := e.sandboxes.Do(key, func() (any, error) {
		if rec, ok := e.store.GetSandbox(id); reuse && ok && rec.Pod != nil && rec.DeletedAt == nil && !e.isStale(id) {
			return rec, nil
		}
		if err := e.limit.Wait(ctx); err != nil {
			return enrich.Record{}, err
		}
		resp, err := e.rt.PodSandboxStatus(ctx, id)
		if err != nil {
			if !isNotFound(err) {
				e.rec.LookupFailed(StagePodSandboxStatus, reasonOf(err))
			}
			return enrich.Record{}, &rpcError{rpc: "PodSandboxStatus", err: err}
		}
		rec, err := enrich.Sandbox(resp, e.runtimeName(ctx), e.opts.Enrich)
		if err != nil && !isReason(err, enrich.ReasonBadCNIResult) {
			e.rec.LookupFailed(StageParse, parseReason(err))
			e.log.Warn("malformed pod sandbox status", zap.String("id", id), zap.Error(err))
			return enrich.Record{}, err
		}
		if err != nil { // the rest of the record is good
			e.rec.LookupFailed(StageParse, parseReason(err))
		}
		e.mu.Lock()
		delete(e.stale, id)
		e.mu.Unlock()
		e.store.Put(rec)
		return rec, nil
	})
	return v.(enrich.Record), err
}

// runtimeName names the runtime for records. A lookup may run before the
// first sync has asked Version; then it asks itself (once, shared by the
// client's memory of the answer).
func (e *Engine) runtimeName(ctx context.Context) string {
	if name := e.rt.RuntimeName(); name != "" {
		return name
	}
	if v, err := e.rt.Version(ctx); err == nil {
		return v.GetRuntimeName()
	}
	return ""
}

// rpcError tags a runtime error with the RPC that failed.
type rpcError struct {
	rpc string
	err error
}

func (r *rpcError) Error() string { return r.err.Error() }
func (r *rpcError) Unwrap() error { return r.err }

func retryRPC(err error) string {
	var r *rpcError
	if errors.As(err, &r) {
		return r.rpc
	}
	return "none"
}

// retryable says whether err is worth another try, and why: only transient
// failures are. An ID the runtime does not know yet waits (see waiter).
func (e *Engine) retryable(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var r *rpcError
	if !errors.As(err, &r) {
		return "", false // parse errors: the same answer would come back
	}
	switch code := status.Code(r.err); code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return reasonOf(r.err), true
	case codes.ResourceExhausted:
		// gRPC's own message size cap answers ResourceExhausted too, and
		// the same oversized answer would come back: only throttling is
		// worth another try.
		return reasonOf(r.err), !tooLarge(r.err)
	}
	return "", false
}

// tooLarge says whether err is gRPC refusing a message over its size cap
// rather than the runtime throttling; grpc-go tells them apart only in the
// message.
func tooLarge(err error) bool {
	return strings.Contains(status.Convert(err).Message(), "larger than max")
}

func (e *Engine) sleepBackoff(ctx context.Context, try int) error {
	d := e.opts.RetryBase << try
	if d > e.opts.RetryMax || d <= 0 {
		d = e.opts.RetryMax
	}
	// Full jitter in [d/2, d): spreads retries of a burst apart.
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	return e.opts.Sleep(ctx, d)
}

func isNotFound(err error) bool {
	return err != nil && statusCode(err) == codes.NotFound
}

func statusCode(err error) codes.Code {
	var r *rpcError
	if errors.As(err, &r) {
		return status.Code(r.err)
	}
	return status.Code(err)
}

// reasonOf is a bounded label for an RPC error: its gRPC code.
func reasonOf(err error) string {
	c := status.Code(err)
	if errors.Is(err, context.DeadlineExceeded) {
		c = codes.DeadlineExceeded
	}
	return snake(c.String())
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func parseReason(err error) string {
	var p *enrich.ParseError
	if errors.As(err, &p) {
		return p.Reason
	}
	return "unknown"
}

func isReason(err error, reason string) bool {
	var p *enrich.ParseError
	return errors.As(err, &p) && p.Reason == reason
}
