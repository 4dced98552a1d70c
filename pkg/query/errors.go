package query

import (
	"errors"
	"fmt"
)

// Code classifies why a question could not be answered, independent of the
// transport: the HTTP API answers a status and the gRPC API a status code
// for each.
type Code int

// The failure codes.
const (
	CodeInvalid      Code = iota + 1 // malformed request
	CodeNotFound                     // no such container, process or cgroup
	CodeAmbiguous                    // ID prefix of several records
	CodeRevisionGone                 // watch revision outside the replay window
	CodeTooMany                      // too many watchers, or a watcher too slow
	CodeInternal                     // the daemon failed to read the host
	CodeLookupFailed                 // the on-demand runtime lookup failed
	CodeUnavailable                  // the daemon is shutting down
	CodeTimeout                      // the on-demand runtime lookup timed out
)

// Error is a question the daemon cannot answer, with a message for the
// client.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func failf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of an *Error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
