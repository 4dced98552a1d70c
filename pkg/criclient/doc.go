// Package criclient owns the connection to the container runtime's CRI
// socket: endpoint detection, the gRPC channel, a per-RPC timeout, and the
// observation of every call (RPC name, gRPC code, latency) for metrics.
//
// It knows nothing about records, caches or retries: the lookup engine decides
// what to ask and when; this package only asks.
package criclient
