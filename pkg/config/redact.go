package config

import (
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// redactedValue replaces the value of a secret setting that is set.
const redactedValue = "[REDACTED]"

// MarshalLogObject logs the effective configuration in key-table order,
// keyed by public key name, with durations and modes as a user would write
// them and secret settings masked, so zap.Object("config", cfg) gives one
// readable start-up line. No setting is secret today; a secret:"true" tag
// on its field is all it takes.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return marshalSettings(settings(), c, enc)
}

// marshalSettings adds each value with zap's field for its type (string,
// int, float, bool or string list).
func marshalSettings(sets []setting, c Config, enc zapcore.ObjectEncoder) error {
	for _, s := range sets {
		value := displayValue(s.field(&c))
		if s.secret && s.text(&c) != "" {
			value = redactedValue
		}
		zap.Any(s.key, value).AddTo(enc)
	}
	return nil
}
