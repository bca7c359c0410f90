package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/chaos"
)

func TestChaosFlags(t *testing.T) {
	f, _, err := parseChaosFlags([]string{"--duration", "5m", "--seed", "42", "--regions", "5", "--nodes", "2",
		"--faults", "kill, pause,isolate", "--latency", "0", "--out", "/tmp/x", "--small-region-memory", "none", "--all", "0.1", "--wait", "0", "--counter-keys", "0", "--hash-keys", "0"})
	if err != nil {
		t.Fatal(err)
	}
	c := f.cfg
	if !f.set || f.seed != 42 || c.Duration != 5*time.Minute || c.Regions != 5 || c.NodesPerRegion != 2 ||
		!slices.Equal(c.Faults, []string{"kill", "pause", "isolate"}) || c.Latency >= 0 || f.out != "/tmp/x" ||
		c.SmallRegionMemory != "" || c.AllFraction != 0.1 || c.WaitFraction >= 0 || c.CounterKeys >= 0 || c.HashKeys >= 0 {
		t.Errorf("parsed %+v", f)
	}
	f, _, err = parseChaosFlags([]string{"--nodes", "3,1, 2"})
	if err != nil || !slices.Equal(f.cfg.RegionSizes, []int{3, 1, 2}) {
		t.Errorf("--nodes 3,1,2: sizes %v, %v", f.cfg.RegionSizes, err)
	}
	for _, args := range [][]string{{"--nodes", "3,0"}, {"--nodes", "6"}, {"--nodes", "2,x"}, {"--regions", "2", "--nodes", "1,2,3"}} {
		if _, _, err := parseChaosFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	f, _, err = parseChaosFlags([]string{"--faults", "none"})
	if err != nil || f.set || f.cfg.Schedule == nil || len(f.cfg.Schedule.Faults) != 0 || f.cfg.Duration != time.Minute {
		t.Errorf("--faults none: %+v, %v", f, err)
	}
	if f.cfg.Plaintext {
		t.Error("the links are plaintext by default; want mutual TLS")
	}
	for _, tt := range []struct {
		arg       string
		plaintext bool
	}{{"--tls", false}, {"--tls=true", false}, {"--tls=false", true}} {
		f, _, err = parseChaosFlags([]string{tt.arg})
		if err != nil || f.cfg.Plaintext != tt.plaintext {
			t.Errorf("%s: Plaintext %v, want %v (%v)", tt.arg, f.cfg.Plaintext, tt.plaintext, err)
		}
	}
}

func TestChaosCommandErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"-h"}, 0, "go run ./cmd/geocache-chaos --duration 5m --seed 42"},
		{[]string{"--duration", "soon"}, 2, "invalid value"},
		{[]string{"stray"}, 2, "unexpected argument"},
		{[]string{"--faults", "meteor", "--duration", "1s", "--out", t.TempDir()}, 1, `unknown fault kind "meteor"`},
		{[]string{"--recheck", t.TempDir()}, 1, "history.json.gz"},
		{[]string{"--small-region-memory", "lots", "--duration", "1s", "--out", t.TempDir()}, 1, `small region memory "lots"`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
			t.Errorf("geocache-chaos %q: exit %d, want %d; output %q lacks %q", tt.args, code, tt.code, stdout.String()+stderr.String(), tt.out)
		}
	}
}

// The usage's fault list is the package's.
func TestChaosFaultsDefault(t *testing.T) {
	f, _, err := parseChaosFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.cfg.Faults, chaos.AllFaults) {
		t.Errorf("default faults %v, want %v", f.cfg.Faults, chaos.AllFaults)
	}
	if f.cfg.CounterKeys != 4 || f.cfg.HashKeys != 2 {
		t.Errorf("default counter keys %d, hash keys %d; want 4 and 2 (on)", f.cfg.CounterKeys, f.cfg.HashKeys)
	}
	if f.cfg.SmallRegionMemory != chaos.DefaultSmallRegionMemory {
		t.Errorf("default small region memory %q, want %q", f.cfg.SmallRegionMemory, chaos.DefaultSmallRegionMemory)
	}
}
