package cache

import "errors"

// ErrNotFound means no cached record has the requested ID or ID prefix.
var ErrNotFound = errors.New("not found")

// ErrAmbiguous means an ID prefix matches more than one cached record. The
// cache never guesses: the caller must send a longer prefix.
var ErrAmbiguous = errors.New("ambiguous id prefix")

// ErrInvalidID means the requested ID is not 12 to 64 lowercase hex digits.
var ErrInvalidID = errors.New("invalid id")
