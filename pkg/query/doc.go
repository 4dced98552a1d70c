// Package query answers the questions every API of the daemon asks, apart
// from any transport: which record for this container ID or prefix, PID,
// cgroup path, cgroup ID or pod IP; which containers and pods a filter
// selects; and why a question cannot be answered (Code). The HTTP API
// (package httpapi) and the gRPC API (package grpcapi) are thin
// translations of it, and the CLI and the HTTP client share its types.
//
// It reads the cache and asks the lookup engine for on-demand lookups; it
// never calls the runtime itself.
package query
