// Package api owns the local HTTP+JSON API that node-local consumers ask:
// records by container ID or prefix, by PID, lists with filters, health and
// readiness, and the unix socket it listens on.
//
// It reads the cache and asks the lookup engine for on-demand lookups; it
// never calls the runtime itself.
package api
