package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

const (
	zipfS     = 1.01
	zipfV     = 1.0
	valueSize = 64
	batch     = 256 // ops between checks of the stop flag
)

// data is generated once, before any measurement, so the hot loops only index
// into it: no formatting, no allocation.
type data struct {
	keys     []string // keys[i] = fmt.Sprintf("%016d", i)
	stream   []uint32 // Zipf-distributed indices into keys
	value    []byte   // the one shared value
	distinct int      // distinct keys in stream
}

func newData(nkeys, nstream int, seed int64) *data {
	d := &data{keys: make([]string, nkeys), stream: make([]uint32, nstream), value: make([]byte, valueSize)}
	for i := range d.keys {
		d.keys[i] = fmt.Sprintf("%016d", i)
	}
	z := rand.NewZipf(rand.New(rand.NewSource(seed)), zipfS, zipfV, uint64(nkeys-1))
	seen := make([]bool, nkeys)
	for i := range d.stream {
		k := z.Uint64()
		d.stream[i] = uint32(k)
		if !seen[k] {
			seen[k] = true
			d.distinct++
		}
	}
	return d
}

type workload struct {
	id, name   string
	writeEvery int  // every n-th op is a Set; 0 = never
	aside      bool // Get; Set on miss
}

var allWorkloads = []workload{
	{id: "read", name: "read-only (100% Get)"},
	{id: "90/10", name: "90% Get / 10% Set", writeEvery: 10},
	{id: "50/50", name: "50% Get / 50% Set", writeEvery: 2},
	{id: "aside", name: "cache-aside (Get; Set on miss)", aside: true},
}

func parseWorkloads(s string) ([]workload, error) {
	var out []workload
	for _, id := range strings.Split(s, ",") {
		i := slices.IndexFunc(allWorkloads, func(w workload) bool { return w.id == strings.TrimSpace(id) })
		if i < 0 {
			return nil, fmt.Errorf("unknown workload %q (have read, 90/10, 50/50, aside)", id)
		}
		out = append(out, allWorkloads[i])
	}
	return out, nil
}

// counts is one worker's tally, padded so workers do not share a cache line.
type counts struct {
	ops, gets, hits uint64
	_               [40]byte
}

// work runs w against c from stream position pos until stop is set.
func work(c cache, w workload, d *data, pos int, stop *atomic.Bool, out *counts) {
	keys, stream, val := d.keys, d.stream, d.value
	n := len(stream)
	var ops, gets, hits uint64
	switch {
	case w.aside:
		for !stop.Load() {
			for range batch {
				k := keys[stream[pos]]
				if pos++; pos == n {
					pos = 0
				}
				if c.Get(k) {
					hits++
				} else {
					c.Set(k, val)
				}
			}
			ops += batch
			gets += batch
		}
	case w.writeEvery == 0:
		for !stop.Load() {
			for range batch {
				k := keys[stream[pos]]
				if pos++; pos == n {
					pos = 0
				}
				if c.Get(k) {
					hits++
				}
			}
			ops += batch
			gets += batch
		}
	default:
		every, phase := w.writeEvery, 0
		for !stop.Load() {
			for range batch {
				k := keys[stream[pos]]
				if pos++; pos == n {
					pos = 0
				}
				if phase++; phase == every {
					phase = 0
					c.Set(k, val)
				} else {
					gets++
					if c.Get(k) {
						hits++
					}
				}
			}
			ops += batch
		}
	}
	*out = counts{ops: ops, gets: gets, hits: hits}
}

type sample struct {
	opsPerSec, allocsPerOp, hitRatio float64
	// cpuPerOp is this process's CPU time (user and system, every thread:
	// the workers, the GC, the caches' own goroutines) per op, in ns. Other
	// load on the machine stretches the wall time of a run but hardly its
	// CPU time, so on a busy machine it compares costs more steadily than
	// ops/s does.
	cpuPerOp float64
}

// measure builds a fresh cache, prefills it, and runs procs workers for
// o.duration.
func measure(o options, d *data, f factory, w workload, procs int) (sample, error) {
	c, err := f.new(o.capacity, o.ttl)
	if err != nil {
		return sample{}, err
	}
	defer c.Close()
	// The label lets one -cpuprofile of many cells be cut by cache,
	// workload and phase (prefill, measure), e.g.
	// go tool pprof -tagfocus='cell=^geocache-node 50/50 measure$'.
	labels := pprof.Labels("cell", f.id+" "+w.id+" prefill")
	pprof.Do(context.Background(), labels, func(context.Context) {
		for i := range o.prefill {
			c.Set(d.keys[d.stream[i]], d.value)
		}
		c.Settle()
	})
	labels = pprof.Labels("cell", f.id+" "+w.id+" measure")
	runtime.GC()

	var (
		stop    atomic.Bool
		start   = make(chan struct{})
		ready   sync.WaitGroup
		done    sync.WaitGroup
		tallies = make([]counts, procs)
		m0, m1  runtime.MemStats
	)
	for i := range procs {
		ready.Add(1)
		done.Add(1)
		pos := (o.prefill + i*len(d.stream)/procs) % len(d.stream)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			pprof.Do(context.Background(), labels, func(context.Context) {
				work(c, w, d, pos, &stop, &tallies[i])
			})
		}()
	}
	ready.Wait()
	runtime.ReadMemStats(&m0)
	cpu0 := selfCPU()
	t0 := time.Now()
	close(start)
	time.Sleep(o.duration)
	stop.Store(true)
	done.Wait()
	elapsed := time.Since(t0)
	cpu := selfCPU() - cpu0
	runtime.ReadMemStats(&m1)

	var t counts
	for _, x := range tallies {
		t.ops += x.ops
		t.gets += x.gets
		t.hits += x.hits
	}
	s := sample{
		opsPerSec:   float64(t.ops) / elapsed.Seconds(),
		allocsPerOp: float64(m1.Mallocs-m0.Mallocs) / float64(t.ops),
		cpuPerOp:    float64(cpu.Nanoseconds()) / float64(t.ops),
	}
	if t.gets > 0 {
		s.hitRatio = float64(t.hits) / float64(t.gets)
	}
	return s, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// runCell measures every cache on one (workload, GOMAXPROCS) cell, rounds
// times, rotating the cache order each round so no cache always runs first.
func runCell(o options, d *data, w workload, procs int) {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)

	load := startLoad()
	n := len(o.caches)
	samples := make([][]sample, n)
	failed := make([]error, n)
	for r := range o.rounds {
		for j := range n {
			i := (j + r) % n
			if failed[i] != nil {
				continue
			}
			s, err := measure(o, d, o.caches[i], w, procs)
			if err != nil {
				failed[i] = err
				continue
			}
			samples[i] = append(samples[i], s)
		}
	}

	fmt.Printf("== %s, GOMAXPROCS=%d, %d worker goroutine(s); median of %d x %s; %s\n",
		w.name, procs, procs, o.rounds, o.duration, load)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cache\t ops/s\t ns/op\t cpu ns/op\t allocs/op\t hit %\t best ops/s\t spread\t geocache x\t cpu x\t")
	var geo, geoCPU float64
	med := make([]sample, n)
	for i := range n {
		if len(samples[i]) == 0 {
			continue
		}
		var ops, al, hr, cpu []float64
		for _, s := range samples[i] {
			ops, al, hr, cpu = append(ops, s.opsPerSec), append(al, s.allocsPerOp), append(hr, s.hitRatio), append(cpu, s.cpuPerOp)
		}
		med[i] = sample{median(ops), median(al), median(hr), median(cpu)}
		if o.caches[i].id == "geocache" {
			geo, geoCPU = med[i].opsPerSec, med[i].cpuPerOp
		}
	}
	for i, f := range o.caches {
		if failed[i] != nil {
			fmt.Fprintf(tw, "%s\t FAILED: %v\t\t\t\t\t\t\t\t\t\n", f.name, failed[i])
			continue
		}
		ops := make([]float64, len(samples[i]))
		for k, s := range samples[i] {
			ops[k] = s.opsPerSec
		}
		spread := (slices.Max(ops) - slices.Min(ops)) / med[i].opsPerSec * 100
		ratio, cpuRatio := "-", "-"
		if geo > 0 && f.id != "geocache" {
			ratio = fmt.Sprintf("%.2fx", geo/med[i].opsPerSec)
			cpuRatio = fmt.Sprintf("%.2fx", med[i].cpuPerOp/geoCPU)
		}
		fmt.Fprintf(tw, "%s\t %s\t %.1f\t %.1f\t %.3f\t %.2f\t %s\t %.0f%%\t %s\t %s\t\n",
			f.name, human(med[i].opsPerSec), 1e9/med[i].opsPerSec, med[i].cpuPerOp, med[i].allocsPerOp, med[i].hitRatio*100,
			human(slices.Max(ops)), spread, ratio, cpuRatio)
	}
	tw.Flush()
	fmt.Println()
}

func human(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

// runHitCheck replays the cache-aside workload deterministically on one
// goroutine: prefill with the first o.prefill stream keys, then Get/Set-on-miss
// over the rest of the stream, for every cache and for an exact LRU.
func runHitCheck(o options, d *data, procs int) {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)

	measured := d.stream[o.prefill:]
	fmt.Printf("== hit ratio vs exact LRU: cache-aside, 1 goroutine, GOMAXPROCS=%d, capacity %d, prefill %d, %d measured Gets\n",
		procs, o.capacity, o.prefill, len(measured))

	ref, _ := simplelru.NewLRU[string, []byte](o.capacity, nil)
	for _, k := range d.stream[:o.prefill] {
		ref.Add(d.keys[k], d.value)
	}
	var refHits int
	for _, k := range measured {
		if _, ok := ref.Get(d.keys[k]); ok {
			refHits++
		} else {
			ref.Add(d.keys[k], d.value)
		}
	}
	exact := float64(refHits) / float64(len(measured)) * 100

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cache\t hit %\t minus exact LRU (points)\t")
	fmt.Fprintf(tw, "exact LRU (golang-lru/v2 simplelru)\t %.3f\t -\t\n", exact)
	for _, f := range o.caches {
		c, err := f.new(o.capacity, o.ttl)
		if err != nil {
			fmt.Fprintf(tw, "%s\t FAILED: %v\t\t\n", f.name, err)
			continue
		}
		for _, k := range d.stream[:o.prefill] {
			c.Set(d.keys[k], d.value)
		}
		c.Settle()
		var hits int
		for _, k := range measured {
			if c.Get(d.keys[k]) {
				hits++
			} else {
				c.Set(d.keys[k], d.value)
			}
		}
		c.Close()
		hr := float64(hits) / float64(len(measured)) * 100
		fmt.Fprintf(tw, "%s\t %.3f\t %+.3f\t\n", f.name, hr, hr-exact)
	}
	tw.Flush()
	fmt.Println()
}
