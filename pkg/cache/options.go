package cache

import "time"

// DefaultCapacity is the number of records (containers, sandboxes and deleted
// records together) a Cache holds before it evicts.
const DefaultCapacity = 10000

// DefaultGracePeriod is how long a deleted record stays answerable.
const DefaultGracePeriod = 5 * time.Minute

// Option configures a Cache built by New.
type Option func(*options)

type options struct {
	capacity int
	grace    time.Duration
	now      func() time.Time
}

// WithCapacity bounds the number of records held. Values below 1 keep
// DefaultCapacity; range checks belong to configuration, not here.
func WithCapacity(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.capacity = n
		}
	}
}

// WithGracePeriod sets how long a deleted record stays answerable. Negative
// values are treated as zero (removed at the first look after deletion).
func WithGracePeriod(d time.Duration) Option {
	return func(o *options) { o.grace = max(d, 0) }
}

// WithClock replaces time.Now, so tests can drive the grace period.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}
