// Package api owns the local HTTP+JSON API that node-local consumers ask:
// records by container ID or prefix, by PID and by cgroup path, lists of
// containers and pods with filters, a watch stream, health and readiness,
// and the unix socket it listens on. Query holds the questions themselves,
// independent of the transport, so that the gRPC API (package grpcapi)
// answers them identically.
//
// It reads the cache and asks the lookup engine for on-demand lookups; it
// never calls the runtime itself.
package api
