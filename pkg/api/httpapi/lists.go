package httpapi

import (
	"net/http"

	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

// cgroupParams and podParams are the query parameters of GET /v1/cgroups
// and GET /v1/pods.
var (
	cgroupParams = map[string]bool{"path": true}
	podParams    = map[string]bool{"namespace": true, "pod": true, "pod_uid": true, "selector": true, "include_deleted": true}
)

// getCgroup answers GET /v1/cgroups?path=/kubepods.slice/...: the record
// of the container a cgroup path belongs to.
func (h *Handler) getCgroup(w http.ResponseWriter, r *http.Request) {
	q, err := queryParams(r, cgroupParams)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !q.Has("path") {
		writeError(w, http.StatusBadRequest, "missing query parameter \"path\"")
		return
	}
	rec, err := h.query.ContainerByCgroup(r.Context(), q.Get("path"))
	writeRecord(w, rec, err)
}

// listPods answers GET /v1/pods: each pod with its sandbox and containers.
func (h *Handler) listPods(w http.ResponseWriter, r *http.Request) {
	o, err := parseListOptions(r, podParams)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := o.PodFilter()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": h.query.Pods(f)})
}

// getCgroupID answers GET /v1/cgroup-ids/{id}: the record whose cgroup v2
// directory has this inode number now.
func (h *Handler) getCgroupID(w http.ResponseWriter, r *http.Request) {
	id, err := query.ParseCgroupID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rec, err := h.query.ContainerByCgroupID(id)
	writeRecord(w, rec, err)
}

// getIP answers GET /v1/ips/{ip}: the live pod that holds the address now.
func (h *Handler) getIP(w http.ResponseWriter, r *http.Request) {
	pod, err := h.query.PodByIP(r.PathValue("ip"))
	if err != nil {
		writeQueryError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pod)
}
