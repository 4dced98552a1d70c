// Package grpcapi serves cri-enricherd's gRPC API (api/v1): the Enricher
// service, answering the same queries as the HTTP API through api.Query and
// streaming changes from the watch hub, and the standard grpc.health.v1
// service, SERVING while the daemon is ready.
//
// Like the HTTP API it reads the cache and asks the lookup engine for
// on-demand lookups; it never calls the runtime itself.
package grpcapi
