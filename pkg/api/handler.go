package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/cgroup"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// maxPID is the kernel's largest possible PID (PID_MAX_LIMIT, 2^22).
const maxPID = 1 << 22

// Records is the cache as the API reads it.
type Records interface {
	Get(idOrPrefix string) (enrich.Record, error)
	List(f cache.Filter) []enrich.Record
	BySandbox(sandboxID string) []enrich.Record
	SandboxByIP(ip string) (enrich.Record, bool)
	ByCgroupID(cgroupID uint64) (enrich.Record, bool)
}

// fullIDLen is the length of a full container or sandbox ID.
const fullIDLen = 64

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
	// Watches serves GET /v1/watch; nil answers 503.
	Watches Watches
	// StreamWriteTimeout bounds each write of a watch stream (default
	// WriteTimeout): the server's WriteTimeout would cut the whole stream.
	StreamWriteTimeout time.Duration
}

// Handler serves the HTTP API.
type Handler struct {
	query *Query
	log   *zap.Logger
	opts  Options
	mux   *http.ServeMux
}

// NewHandler builds the API's routes.
func NewHandler(records Records, resolver Resolver, pids PIDResolver, log *zap.Logger, opts Options) *Handler {
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.StreamWriteTimeout <= 0 {
		opts.StreamWriteTimeout = WriteTimeout
	}
	q := NewQuery(records, resolver, pids, log, opts.OnDemandTimeout)
	h := &Handler{query: q, log: log, opts: opts, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/containers/{id}", h.getContainer)
	h.mux.HandleFunc("GET /v1/containers", h.listContainers)
	h.mux.HandleFunc("GET /v1/pids/{pid}", h.getPID)
	h.mux.HandleFunc("GET /v1/cgroups", h.getCgroup)
	h.mux.HandleFunc("GET /v1/pods", h.listPods)
	h.mux.HandleFunc("GET /v1/ips/{ip}", h.getIP)
	h.mux.HandleFunc("GET /v1/cgroup-ids/{id}", h.getCgroupID)
	h.mux.HandleFunc("GET /v1/watch", h.watch)
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
	rec, err := h.query.Container(r.Context(), r.PathValue("id"))
	writeRecord(w, rec, err)
}

// listParams are the query parameters GET /v1/containers accepts.
var listParams = map[string]bool{"namespace": true, "pod": true, "pod_uid": true, "sandbox": true,
	"selector": true, "include_deleted": true, "sandboxes": true}

func (h *Handler) listContainers(w http.ResponseWriter, r *http.Request) {
	o, err := parseListOptions(r, listParams)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := o.Filter()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := h.query.Containers(f)
	if err != nil {
		writeError(w, CodeOf(err).HTTPStatus(), err.Error())
		return
	}
	writeRecords(w, recs)
}

// parseListOptions reads the filters of a list request, refusing any
// parameter not in allowed.
func parseListOptions(r *http.Request, allowed map[string]bool) (ListOptions, error) {
	q := r.URL.Query()
	if err := checkParams(q, allowed); err != nil {
		return ListOptions{}, err
	}
	o := ListOptions{Namespace: q.Get("namespace"), PodName: q.Get("pod"), PodUID: q.Get("pod_uid"),
		SandboxID: q.Get("sandbox"), Selector: q.Get("selector")}
	var err error
	if o.IncludeDeleted, err = boolParam(q.Get("include_deleted"), false); err != nil {
		return o, fmt.Errorf("include_deleted: %w", err)
	}
	sandboxes, err := boolParam(q.Get("sandboxes"), true)
	if err != nil {
		return o, fmt.Errorf("sandboxes: %w", err)
	}
	o.ExcludeSandboxes = !sandboxes
	return o, nil
}

func checkParams(q url.Values, allowed map[string]bool) error {
	for k, v := range q {
		if !allowed[k] {
			return fmt.Errorf("unknown query parameter %q", truncate(k))
		}
		if len(v) > 1 {
			return fmt.Errorf("query parameter %q given %d times", k, len(v))
		}
	}
	return nil
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
	rec, err := h.query.ContainerByPID(r.Context(), pid)
	writeRecord(w, rec, err)
}

// writeRecord answers a single-record request.
func writeRecord(w http.ResponseWriter, rec enrich.Record, err error) {
	if err != nil {
		writeError(w, CodeOf(err).HTTPStatus(), err.Error())
		return
	}
	buf := getBuf()
	defer putBuf(buf)
	b, ok := appendRecord(*buf, &rec)
	*buf = append(b, '\n')
	if !ok {
		refused := rec                        // a copy, so rec itself stays on the stack
		writeJSON(w, http.StatusOK, &refused) // encoding/json refuses it the same way
		return
	}
	writeBody(w, http.StatusOK, *buf)
}

// writeRecords answers a list request with {"items": [records]}.
func writeRecords(w http.ResponseWriter, recs []enrich.Record) {
	buf := getBuf()
	defer putBuf(buf)
	b := append(*buf, `{"items":[`...)
	for i := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendRecord(b, &recs[i]); !ok {
			*buf = b
			writeJSON(w, http.StatusOK, map[string]any{"items": recs})
			return
		}
	}
	*buf = append(b, "]}\n"...)
	writeBody(w, http.StatusOK, *buf)
}

// writeBody sends an encoded JSON body in one write, with its length, so
// the server neither chunks it nor copies it through its own buffer twice.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // the client went away; nothing to do
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
