package httpapi

import "net/http"

// RegisterProbes adds the kubelet's probes to mux: GET /healthz answers ok
// while the process serves, GET /readyz 200 once ready says so and 503
// before. The API serves them and so does the metrics listener, which is
// what the kubelet probes. A nil ready is always ready.
func RegisterProbes(mux *http.ServeMux, ready func() bool) {
	if ready == nil {
		ready = func() bool { return true }
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			writeText(w, http.StatusServiceUnavailable, "not ready: first sync with the runtime not done or runtime unreachable")
			return
		}
		writeText(w, http.StatusOK, "ok")
	})
}
