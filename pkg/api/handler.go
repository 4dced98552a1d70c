package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/lookup"
)

// maxPID is the kernel's largest possible PID (PID_MAX_LIMIT, 2^22).
const maxPID = 1 << 22

// Records is the cache as the API reads it.
type Records interface {
	Get(idOrPrefix string) (enrich.Record, error)
	List(f cache.Filter) []enrich.Record
}

// Resolver looks up a full ID the cache does not hold yet.
type Resolver interface {
	Lookup(ctx context.Context, id string) (enrich.Record, error)
}

// PIDResolver maps a PID to its container cgroup.
type PIDResolver interface {
	Resolve(pid int) (string, cgroup.Ref, error)
}

// Options tune the handler.
type Options struct {
	// OnDemandTimeout bounds how long a request for an unknown full ID
	// waits for a lookup (default 2s): a seconds-old container is answered,
	// not refused.
	OnDemandTimeout time.Duration
	// Ready reports readiness for /readyz.
	Ready func() bool
}

// Handler serves the HTTP API.
type Handler struct {
	records  Records
	resolver Resolver
	pids     PIDResolver
	log      *zap.Logger
	opts     Options
	mux      *http.ServeMux
}

// NewHandler builds the API's routes.
func NewHandler(records Records, resolver Resolver, pids PIDResolver, log *zap.Logger, opts Options) *Handler {
	if opts.OnDemandTimeout <= 0 {
		opts.OnDemandTimeout = 2 * time.Second
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	h := &Handler{records: records, resolver: resolver, pids: pids, log: log, opts: opts, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/containers/{id}", h.getContainer)
	h.mux.HandleFunc("GET /v1/containers", h.listContainers)
	h.mux.HandleFunc("GET /v1/pids/{pid}", h.getPID)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	h.mux.HandleFunc("GET /readyz", h.readyz)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) readyz(w http.ResponseWriter, _ *http.Request) {
	if !h.opts.Ready() {
		writeText(w, http.StatusServiceUnavailable, "not ready: first sync with the runtime not done or runtime unreachable")
		return
	}
	writeText(w, http.StatusOK, "ok")
}

func (h *Handler) getContainer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ValidID(id) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("malformed id %q: want 12 to 64 lowercase hex characters", truncate(id)))
		return
	}
	rec, status, msg := h.find(r.Context(), id)
	if status != http.StatusOK {
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// find answers from the cache, or looks a full ID up on demand.
func (h *Handler) find(ctx context.Context, id string) (enrich.Record, int, string) {
	rec, err := h.records.Get(id)
	switch {
	case err == nil:
		return rec, http.StatusOK, ""
	case errors.Is(err, cache.ErrAmbiguous):
		return rec, http.StatusConflict, err.Error()
	case len(id) < 64 || h.resolver == nil:
		return rec, http.StatusNotFound, fmt.Sprintf("no container or sandbox with id %s", id)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.OnDemandTimeout)
	defer cancel()
	rec, err = h.resolver.Lookup(ctx, id)
	switch {
	case err == nil:
		return rec, http.StatusOK, ""
	case errors.Is(err, lookup.ErrNotFound):
		return rec, http.StatusNotFound, fmt.Sprintf("no container or sandbox with id %s", id)
	case errors.Is(err, context.DeadlineExceeded):
		return rec, http.StatusGatewayTimeout, fmt.Sprintf("lookup of %s did not finish within %s", id, h.opts.OnDemandTimeout)
	}
	h.log.Debug("on-demand lookup failed", zap.String("id", id), zap.Error(err))
	return rec, http.StatusBadGateway, fmt.Sprintf("runtime lookup of %s failed: %v", id, err)
}

// listParams are the query parameters GET /v1/containers accepts.
var listParams = map[string]bool{"namespace": true, "pod": true, "pod_uid": true, "sandbox": true, "include_deleted": true, "sandboxes": true}

func (h *Handler) listContainers(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs := h.records.List(f)
	if recs == nil {
		recs = []enrich.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": recs})
}

func parseFilter(r *http.Request) (cache.Filter, error) {
	q := r.URL.Query()
	for k, v := range q {
		if !listParams[k] {
			return cache.Filter{}, fmt.Errorf("unknown query parameter %q", truncate(k))
		}
		if len(v) > 1 {
			return cache.Filter{}, fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
	}
	f := cache.Filter{Namespace: q.Get("namespace"), PodName: q.Get("pod"), PodUID: q.Get("pod_uid"), SandboxID: q.Get("sandbox")}
	var err error
	if f.IncludeDeleted, err = boolParam(q.Get("include_deleted"), false); err != nil {
		return f, fmt.Errorf("include_deleted: %w", err)
	}
	sandboxes, err := boolParam(q.Get("sandboxes"), true)
	if err != nil {
		return f, fmt.Errorf("sandboxes: %w", err)
	}
	f.ExcludeSandboxes = !sandboxes
	if f.SandboxID != "" && !ValidID(f.SandboxID) {
		return f, fmt.Errorf("sandbox: malformed id %q", truncate(f.SandboxID))
	}
	return f, nil
}

func boolParam(v string, def bool) (bool, error) {
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", truncate(v))
	}
	return b, nil
}

func (h *Handler) getPID(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("pid")
	pid, err := strconv.Atoi(raw)
	if err != nil || pid <= 0 || pid > maxPID {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("malformed pid %q: want an integer from 1 to %d", truncate(raw), maxPID))
		return
	}
	_, ref, err := h.pids.Resolve(pid)
	switch {
	case errors.Is(err, cgroup.ErrNoContainer):
		writeError(w, http.StatusNotFound, fmt.Sprintf("pid %d is not in a container", pid))
		return
	case errors.Is(err, fs.ErrNotExist):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no process with pid %d", pid))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("reading cgroup of pid %d: %v", pid, err))
		return
	}
	rec, status, msg := h.find(r.Context(), ref.ContainerID)
	if status != http.StatusOK {
		writeError(w, status, msg)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// ValidID says whether s can name a container: 12 to 64 lowercase hex.
func ValidID(s string) bool {
	if len(s) < 12 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// truncate keeps error messages bounded when echoing client input.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Status: status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}
