package config

import (
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the process logger writing to out (main passes stderr):
// JSON or console encoding, the configured level, and sampling above debug
// so a failure repeated for every container cannot flood the node's log
// pipeline.
func NewLogger(c LogConfig, out zapcore.WriteSyncer) (*zap.Logger, error) {
	if !slices.Contains(logLevels, c.Level) {
		return nil, fmt.Errorf("log level %q: want one of %v", c.Level, logLevels)
	}
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Level, err)
	}
	encoder, err := newEncoder(c.Format)
	if err != nil {
		return nil, err
	}
	core := zapcore.NewCore(encoder, out, level)
	if level > zapcore.DebugLevel {
		core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	}
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(out)), nil
}

func newEncoder(format string) (zapcore.Encoder, error) {
	cfg := zap.NewProductionEncoderConfig()
	cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	switch format {
	case "json":
		return zapcore.NewJSONEncoder(cfg), nil
	case "console":
		cfg.EncodeLevel = zapcore.CapitalLevelEncoder
		return zapcore.NewConsoleEncoder(cfg), nil
	}
	return nil, fmt.Errorf("log format %q: want one of %v", format, logFormats)
}
