package hlc_test

import (
	"testing"
	"time"

	"github.com/geocache/geocache/internal/hlc"
)

func TestAllocs(t *testing.T) {
	sys, err := hlc.New(hlc.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fake, pc := newClock(t, hlc.Config{})
	fake.ObservePeerOffset("peer", 0)
	remote := hlc.MakeTimestamp(start.UnixMilli(), 3)
	tests := []struct {
		name string
		fn   func()
	}{
		{"Now system clock", func() { _, _ = sys.Now() }},
		{"Now fake clock", func() { _, _ = fake.Now() }},
		{"Update", func() { fake.Update(remote) }},
		{"Update physical moves", func() { pc.Advance(time.Millisecond); fake.Update(remote) }},
		{"ObservePeerOffset known peer", func() { fake.ObservePeerOffset("peer", time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
				t.Errorf("%v allocations per call, want 0", n)
			}
		})
	}
}

func BenchmarkNow(b *testing.B) {
	b.Run("system", func(b *testing.B) {
		c, err := hlc.New(hlc.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.Now()
		}
	})
	b.Run("fake", func(b *testing.B) {
		c, _ := newClock(b, hlc.Config{})
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.Now()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		c, err := hlc.New(hlc.Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = c.Now()
			}
		})
	})
}

func BenchmarkUpdate(b *testing.B) {
	c, err := hlc.New(hlc.Config{})
	if err != nil {
		b.Fatal(err)
	}
	remote := hlc.MakeTimestamp(time.Now().UnixMilli(), 0)
	b.ReportAllocs()
	for b.Loop() {
		c.Update(remote)
	}
}
