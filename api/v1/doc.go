// Package enricherv1 holds the Go code generated from enricher.proto: the
// messages and the client and server stubs of cri-enricherd's gRPC API.
// Regenerate it with `make generate`; `make generate-check` proves the
// committed code matches the .proto.
package enricherv1
