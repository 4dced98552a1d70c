// Package integration proves the lookup path end to end without a real
// runtime: the real CRI client, lookup engine, cache and metrics registry,
// wired as cmd/cri-enricherd wires them, against the in-process fake
// runtime of package fakecri over a real gRPC unix socket. Every test
// asserts through what an operator sees (the metrics registry) and what a
// consumer sees (the cache).
//
// `make integration` runs it with -race; `make unit` does not reach it.
package integration
