package slogzap

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type pair struct{ A, B string }

func (p pair) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("a", p.A)
	enc.AddString("b", p.B)
	return nil
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lg := New(log.With("component", "etcd"), zapcore.WarnLevel).Named("client").With(zap.String("endpoint", "127.0.0.1:2379"))

	lg.Info("dropped")
	lg.Debug("dropped too")
	lg.Warn("retrying", zap.Int("attempt", 3), zap.Error(errors.New("connection refused")), zap.Inline(pair{"x", "y"}))
	lg.Error("failed", zap.Object("pair", pair{"p", "q"}))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2 (warn and error only):\n%s", len(lines), buf.String())
	}
	var warn, failed map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &warn); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &failed); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"level": "WARN", "msg": "retrying", "component": "etcd", "logger": "client", "endpoint": "127.0.0.1:2379",
		"attempt": float64(3), "error": "connection refused", "a": "x", "b": "y"}
	for k, v := range want {
		if warn[k] != v {
			t.Errorf("warn line: %s = %v, want %v (%s)", k, warn[k], v, lines[0])
		}
	}
	if failed["level"] != "ERROR" || failed["msg"] != "failed" {
		t.Errorf("error line: %s", lines[1])
	}
	if p, ok := failed["pair"].(map[string]any); !ok || p["a"] != "p" || p["b"] != "q" {
		t.Errorf("error line's pair: %s", lines[1])
	}
	// The warn line's attributes keep the fields' order.
	if i, j := strings.Index(lines[0], `"attempt"`), strings.Index(lines[0], `"error"`); i < 0 || j < i {
		t.Errorf("fields out of order: %s", lines[0])
	}
}

func TestLevel(t *testing.T) {
	for zl, want := range map[zapcore.Level]slog.Level{
		zapcore.DebugLevel: slog.LevelDebug, zapcore.InfoLevel: slog.LevelInfo, zapcore.WarnLevel: slog.LevelWarn,
		zapcore.ErrorLevel: slog.LevelError, zapcore.DPanicLevel: slog.LevelError, zapcore.FatalLevel: slog.LevelError,
	} {
		if got := level(zl); got != want {
			t.Errorf("level(%v) = %v, want %v", zl, got, want)
		}
	}
}
