// Package slogzap gives libraries that log through zap (etcd's client and
// server) a zap.Logger that writes to the process's slog.Logger, so their
// lines come out in the same format and place as everything else.
package slogzap

import (
	"context"
	"log/slog"
	"maps"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a zap.Logger that writes entries at min or above to log,
// with their fields as attributes. It is safe for concurrent use.
func New(log *slog.Logger, min zapcore.Level) *zap.Logger {
	return zap.New(&core{log: log, min: min})
}

type core struct {
	log *slog.Logger
	min zapcore.Level
}

func (c *core) Enabled(l zapcore.Level) bool { return l >= c.min }

func (c *core) With(fields []zapcore.Field) zapcore.Core {
	return &core{log: c.log.With(attrs(fields)...), min: c.min}
}

func (c *core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	args := attrs(fields)
	if e.LoggerName != "" {
		args = append(args, slog.String("logger", e.LoggerName))
	}
	c.log.Log(context.Background(), level(e.Level), e.Message, args...)
	return nil
}

func (c *core) Sync() error { return nil }

// level maps zap's levels onto slog's: debug, info and warn as such,
// error and above (dpanic, panic, fatal) as error.
func level(l zapcore.Level) slog.Level {
	switch {
	case l < zapcore.InfoLevel:
		return slog.LevelDebug
	case l < zapcore.WarnLevel:
		return slog.LevelInfo
	case l < zapcore.ErrorLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// attrs encodes fields as zap would and returns them as slog attributes.
func attrs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, len(enc.Fields))
	for _, f := range fields { // in the fields' order, not the map's
		if v, ok := enc.Fields[f.Key]; ok {
			out = append(out, slog.Any(f.Key, v))
			delete(enc.Fields, f.Key)
		}
	}
	// What inline fields added under keys of their own.
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		out = append(out, slog.Any(k, enc.Fields[k]))
	}
	return out
}
