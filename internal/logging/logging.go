// Package logging sets up knode's structured logger and routes the
// Kubernetes libraries' klog output into it, so one process writes one format.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"k8s.io/klog/v2"
)

// ParseLevel accepts slog level names (debug, info, warn, error) and, like
// the kubelet's -v, a verbosity number where 0 is info and each step above
// is one level more detail.
func ParseLevel(s string, verbosity int) (slog.Level, error) {
	if s == "" {
		if verbosity > 0 {
			return slog.LevelInfo - slog.Level(verbosity), nil
		}
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// Setup makes the process-wide slog default and klog's sink the same handler.
// format is "text" or "json". The libraries' klog detail (V(n) levels) shows
// only at verbosity n or more (-v), so --log-level=debug stays readable.
func Setup(w io.Writer, level slog.Level, format string, verbosity int) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	logger := slog.New(h)
	slog.SetDefault(logger)
	klogMin := max(level, slog.LevelInfo-slog.Level(verbosity))
	klog.SetSlogLogger(slog.New(minLevel{Handler: h, min: klogMin}).With("source", "klog"))
	return logger, nil
}

// minLevel drops records below min before they reach the wrapped handler.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: m.Handler.WithAttrs(attrs), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: m.Handler.WithGroup(name), min: m.min}
}
