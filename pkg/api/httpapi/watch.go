package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/pkg/query"
	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

var watchParams = map[string]bool{"revision": true}

// watch answers GET /v1/watch[?revision=N] with newline-delimited JSON
// events, the schema of the gRPC API's WatchEvent. Errors found before the
// stream starts get their HTTP status (400, 410 for a revision outside the
// replay window, 429, 503); an error that ends a started stream, such as a
// watcher too slow, is sent as a last line holding an error body.
func (h *Handler) watch(w http.ResponseWriter, r *http.Request) {
	resume, err := parseRevision(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if h.opts.Watches == nil {
		writeError(w, http.StatusServiceUnavailable, "watch is not available")
		return
	}
	watcher, err := h.opts.Watches.Watch(resume)
	if err != nil {
		writeQueryError(w, query.WatchError(err))
		return
	}
	defer watcher.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := h.stream(r, rc, w, watcher); err != nil {
		h.log.Debug("watch stream ended", zap.Error(err))
	}
}

func parseRevision(r *http.Request) (uint64, error) {
	q, err := queryParams(r, watchParams)
	if err != nil {
		return 0, err
	}
	raw := q.Get("revision")
	if raw == "" {
		return 0, nil
	}
	rev, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		return 0, errors.New("revision: " + strconv.Quote(query.Truncate(raw)) + " is not a revision number")
	}
	return rev, nil
}

// stream writes events until the client goes away or the watcher fails.
// Each write gets a fresh deadline, so a stream lives as long as its client
// reads, while a client that stops reading is cut after one deadline.
func (h *Handler) stream(r *http.Request, rc *http.ResponseController, w http.ResponseWriter, watcher *watch.Watcher) error {
	enc := json.NewEncoder(w)
	for {
		ev, err := watcher.Next(r.Context())
		if err != nil {
			if r.Context().Err() != nil {
				return err
			}
			err = query.WatchError(err)
			_ = rc.SetWriteDeadline(time.Now().Add(h.opts.StreamWriteTimeout))
			_ = enc.Encode(errorBody{Error: err.Error(), Status: httpStatus(err)})
			_ = rc.Flush()
			return err
		}
		if err := rc.SetWriteDeadline(time.Now().Add(h.opts.StreamWriteTimeout)); err != nil {
			return err
		}
		if err := enc.Encode(ev); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
	}
}
