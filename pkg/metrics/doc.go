// Package metrics owns the daemon's Prometheus registry and every series it
// exports. Components report through small methods (ObserveRPC, LookupDone,
// FallbackHit ...) and never touch Prometheus types themselves; per-container
// series come only from scrape-time collectors over the cache.
package metrics
