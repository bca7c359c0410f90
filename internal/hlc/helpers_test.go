package hlc_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

// start is the physical time every test clock starts at.
var start = time.UnixMilli(1732580000123)

// newClock returns an hlc.Clock on a manual physical clock reading start.
// cfg.Physical is overwritten.
func newClock(t testing.TB, cfg hlc.Config) (*hlc.Clock, *testkit.Clock) {
	t.Helper()
	pc := testkit.NewClock(start)
	cfg.Physical = pc
	c, err := hlc.New(cfg)
	if err != nil {
		t.Fatalf("hlc.New: %v", err)
	}
	return c, pc
}

// mustNow calls c.Now and fails the test on error.
func mustNow(t testing.TB, c *hlc.Clock) hlc.Timestamp {
	t.Helper()
	ts, err := c.Now()
	if err != nil {
		t.Fatalf("Now: %v", err)
	}
	return ts
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, rec.Clone())
	r.mu.Unlock()
	return nil
}

// snapshot returns the records so far.
func (r *recorder) snapshot() []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slog.Record(nil), r.records...)
}

// attr returns the value of the attribute key of rec.
func attr(t testing.TB, rec slog.Record, key string) slog.Value {
	t.Helper()
	var v slog.Value
	found := false
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	if !found {
		t.Fatalf("log record %q has no attribute %q", rec.Message, key)
	}
	return v
}
