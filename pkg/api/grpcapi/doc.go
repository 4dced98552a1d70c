// Package grpcapi serves cri-enricherd's gRPC API (api/v1): the Enricher
// service, a thin translation of package query (the same questions and
// refusals as the HTTP API, with gRPC codes for its statuses) that streams
// changes from the watch hub, and the standard grpc.health.v1 service,
// SERVING while the daemon is ready.
//
// Like the HTTP API it reads the cache and asks the lookup engine for
// on-demand lookups; it never calls the runtime itself.
package grpcapi
