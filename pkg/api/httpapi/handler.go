package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

// Options tune the handler.
type Options struct {
	// Ready reports readiness for /readyz (default: always ready).
	Ready func() bool
	// Watches serves GET /v1/watch; nil answers 503.
	Watches query.Watches
	// StreamWriteTimeout bounds each write of a watch stream (default 30s):
	// the server's WriteTimeout would cut the whole stream.
	StreamWriteTimeout time.Duration
}

// Handler serves the HTTP API: each route reads its request, asks the
// query layer and writes the answer or the refusal's status.
type Handler struct {
	query *query.Query
	log   *zap.Logger
	opts  Options
	mux   *http.ServeMux
}

// NewHandler builds the API's routes over q.
func NewHandler(q *query.Query, log *zap.Logger, opts Options) *Handler {
	if opts.StreamWriteTimeout <= 0 {
		opts.StreamWriteTimeout = writeTimeout
	}
	h := &Handler{query: q, log: log, opts: opts, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/containers/{id}", h.getContainer)
	h.mux.HandleFunc("GET /v1/containers", h.listContainers)
	h.mux.HandleFunc("GET /v1/pids/{pid}", h.getPID)
	h.mux.HandleFunc("GET /v1/cgroups", h.getCgroup)
	h.mux.HandleFunc("GET /v1/pods", h.listPods)
	h.mux.HandleFunc("GET /v1/ips/{ip}", h.getIP)
	h.mux.HandleFunc("GET /v1/cgroup-ids/{id}", h.getCgroupID)
	h.mux.HandleFunc("GET /v1/watch", h.watch)
	RegisterProbes(h.mux, opts.Ready)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

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
		writeQueryError(w, err)
		return
	}
	writeRecords(w, recs)
}

// parseListOptions reads the filters of a list request, refusing any
// parameter not in allowed.
func parseListOptions(r *http.Request, allowed map[string]bool) (query.ListOptions, error) {
	q, err := queryParams(r, allowed)
	if err != nil {
		return query.ListOptions{}, err
	}
	o := query.ListOptions{Namespace: q.Get("namespace"), PodName: q.Get("pod"), PodUID: q.Get("pod_uid"),
		SandboxID: q.Get("sandbox"), Selector: q.Get("selector")}
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

// queryParams parses r's query and refuses any parameter not in allowed.
// url.URL.Query drops a pair it cannot parse (a bad %-escape, a ';')
// without a word, which would turn a filter the client got wrong into an
// answer for everything; the parse error is the client's answer instead.
func queryParams(r *http.Request, allowed map[string]bool) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed query: %s", query.Truncate(err.Error()))
	}
	return q, checkParams(q, allowed)
}

func checkParams(q url.Values, allowed map[string]bool) error {
	for k, v := range q {
		if !allowed[k] {
			return fmt.Errorf("unknown query parameter %q", query.Truncate(k))
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
		return false, fmt.Errorf("%q is not true or false", query.Truncate(v))
	}
	return b, nil
}

func (h *Handler) getPID(w http.ResponseWriter, r *http.Request) {
	pid, err := query.ParsePID(r.PathValue("pid"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rec, err := h.query.ContainerByPID(r.Context(), pid)
	writeRecord(w, rec, err)
}

// writeRecord answers a single-record request.
func writeRecord(w http.ResponseWriter, rec enrich.Record, err error) {
	if err != nil {
		writeQueryError(w, err)
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

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// statuses are the HTTP statuses of the query layer's failure codes.
var statuses = map[query.Code]int{
	query.CodeInvalid:      http.StatusBadRequest,
	query.CodeNotFound:     http.StatusNotFound,
	query.CodeAmbiguous:    http.StatusConflict,
	query.CodeRevisionGone: http.StatusGone,
	query.CodeTooMany:      http.StatusTooManyRequests,
	query.CodeLookupFailed: http.StatusBadGateway,
	query.CodeUnavailable:  http.StatusServiceUnavailable,
	query.CodeTimeout:      http.StatusGatewayTimeout,
}

// httpStatus returns the HTTP status of a query or watch error.
func httpStatus(err error) int {
	if s, ok := statuses[query.CodeOf(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// writeQueryError answers a refusal of the query layer with its status.
func writeQueryError(w http.ResponseWriter, err error) { writeError(w, httpStatus(err), err.Error()) }

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
