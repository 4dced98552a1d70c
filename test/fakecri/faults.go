package fakecri

import (
	"slices"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FailFirst returns an Inject function that fails the first n calls with
// code and lets the later ones through.
func FailFirst(n int, code codes.Code) func(id string) error {
	var calls atomic.Int64
	return func(string) error {
		if calls.Add(1) <= int64(n) {
			return status.Errorf(code, "fakecri: injected %s", code)
		}
		return nil
	}
}

// Fail returns an Inject function that fails every call for one of ids (for
// every ID when none is given) with code.
func Fail(code codes.Code, ids ...string) func(id string) error {
	return func(id string) error {
		if len(ids) == 0 || slices.Contains(ids, id) {
			return status.Errorf(code, "fakecri: injected %s", code)
		}
		return nil
	}
}
