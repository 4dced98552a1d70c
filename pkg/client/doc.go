// Package client is a small Go client of the daemon's HTTP API over its
// unix socket, used by the command-line interface. It decodes answers into
// the same record type the daemon serves and classifies failures so that a
// caller can tell "not found" from "daemon unreachable".
package client
