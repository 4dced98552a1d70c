// Package lookup owns the path from "this ID exists" to "its record is in the
// cache": the queue that every source (cgroup watcher, CRI event stream,
// relist, API on-demand requests) feeds, in-flight de-duplication, bounded
// concurrency and rate towards the runtime, honest retries, the negative
// cache, one PodSandboxStatus per pod, the pod-data fallback chain, and the
// bootstrap and relist that keep the cache equal to the runtime.
//
// It asks the runtime through the small Runtime interface, builds records
// with the pure functions of package enrich, stores them in a Store and
// reports what happened through a Recorder; it never touches Prometheus or
// gRPC connections itself.
package lookup
