// Package httpapi serves cri-enricherd's local HTTP+JSON API: records by
// container ID or prefix, by PID, cgroup path and cgroup ID, the pod of an
// IP, lists of containers and pods with filters, a watch stream, and the
// health and readiness probes. Each route is a thin translation of package
// query: it reads the request, asks the query and writes the record or the
// refusal's status. It also holds the limits and the drain every HTTP
// server of the daemon shares (NewServer, Serve).
package httpapi
