package query

import (
	"context"
	"errors"

	"github.com/cri-enricherd/cri-enricherd/pkg/watch"
)

// Watches opens watch streams; *watch.Hub implements it.
type Watches interface {
	Watch(resume uint64) (*watch.Watcher, error)
}

var _ Watches = (*watch.Hub)(nil)

// WatchError turns an error of the watch hub into an *Error; a context
// error (the client went away) is returned as is.
func WatchError(err error) error {
	var slow *watch.TooSlowError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &slow), errors.Is(err, watch.ErrTooManyWatchers):
		return &Error{Code: CodeTooMany, Msg: err.Error()}
	case errors.Is(err, watch.ErrRevisionTooOld):
		return &Error{Code: CodeRevisionGone, Msg: err.Error()}
	case errors.Is(err, watch.ErrRevisionUnknown):
		return &Error{Code: CodeInvalid, Msg: err.Error()}
	case errors.Is(err, watch.ErrClosed):
		return &Error{Code: CodeUnavailable, Msg: err.Error()}
	}
	return &Error{Code: CodeInternal, Msg: err.Error()}
}
