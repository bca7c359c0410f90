package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geocache/geocache"
)

// dist summarizes a latency sample.
type dist struct {
	n                             int
	min, p50, p90, p99, p999, max time.Duration
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return dist{n: len(s), min: s[0], p50: q(0.50), p90: q(0.90), p99: q(0.99), p999: q(0.999), max: s[len(s)-1]}
}

// ms formats a duration in milliseconds with three decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// procStats are a process's CPU time and memory.
type procStats struct {
	CPU          time.Duration // user + system since start
	HeapAlloc    uint64
	HeapInuse    uint64
	Sys          uint64
	HeapReleased uint64
	MaxRSS       int64 // bytes, high-water mark since start
	NumGC        uint32
	HeapLive     uint64 // heap marked live by the last GC (runtime/metrics /gc/heap/live:bytes)
	RunqWait     time.Duration
}

func readProc() procStats {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(live)
	return procStats{
		RunqWait:  runqWait(),
		HeapLive:  live[0].Value.Uint64(),
		CPU:       time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, Sys: m.Sys, HeapReleased: m.HeapReleased,
		MaxRSS: ru.Maxrss << 10, NumGC: m.NumGC,
	}
}

// perSec formats a summed thread time over a wall time as seconds per
// second (run-queue wait can exceed 1 s/s: several threads wait at once).
func perSec(d, wall time.Duration) string {
	if wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f s/s", d.Seconds()/wall.Seconds())
}

func cpuPct(d, wall time.Duration) string {
	if wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(d)/float64(wall))
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

// key16 returns a 16-byte key: tag, writer digit(s), '-', a zero-padded
// counter. Keys of different (tag, writer) never collide.
func key16(buf []byte, tag byte, writer, i int) string {
	buf = append(buf[:0], tag)
	buf = strconv.AppendInt(buf, int64(writer), 10)
	buf = append(buf, '-')
	digits := strconv.AppendInt(nil, int64(i), 10)
	for range max(16-len(buf)-len(digits), 0) {
		buf = append(buf, '0')
	}
	buf = append(buf, digits...)
	return string(buf)
}

// writers runs w goroutines doing Sets of unique 16-byte keys with 100-byte
// values on n until stop is called, each at rate/w writes/s (rate 0: as fast
// as it can). A writer whose Set fails counts the error and sleeps 1 ms.
type writers struct {
	stopFlag atomic.Bool
	wg       sync.WaitGroup
	errs     atomic.Int64
	firstErr atomic.Value
	count    []atomic.Int64
}

func startWriters(n *geocache.Node, w int, rate float64, tag byte) *writers {
	ws := &writers{count: make([]atomic.Int64, w)}
	val := make([]byte, 100)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	for id := range w {
		ws.wg.Go(func() {
			ctx := context.Background()
			buf := make([]byte, 0, 32)
			var interval float64
			if rate > 0 {
				interval = float64(time.Second) / (rate / float64(w))
			}
			start := time.Now()
			i := 0
			for ; !ws.stopFlag.Load(); i++ {
				if err := n.Set(ctx, key16(buf, tag, id, i), val); err != nil {
					if ws.errs.Add(1) == 1 {
						ws.firstErr.Store(err.Error())
					}
					time.Sleep(time.Millisecond) // do not spin on a refusing node
				}
				if interval > 0 {
					if d := time.Until(start.Add(time.Duration(float64(i+1) * interval))); d > 0 {
						time.Sleep(d)
					}
				}
			}
			ws.count[id].Store(int64(i))
		})
	}
	return ws
}

// stop stops the writers and returns the number of Sets they made.
func (ws *writers) stop() int64 {
	ws.stopFlag.Store(true)
	ws.wg.Wait()
	var total int64
	for i := range ws.count {
		total += ws.count[i].Load()
	}
	return total
}

func (ws *writers) errors() string {
	if ws.errs.Load() == 0 {
		return "none"
	}
	return fmt.Sprintf("%d (first: %v)", ws.errs.Load(), ws.firstErr.Load())
}

// peerByAddr returns the PeerStats for the peer address addr.
func peerByAddr(st geocache.Stats, addr string) (geocache.PeerStats, bool) {
	for _, p := range st.Peers {
		if p.Addr == addr {
			return p, true
		}
	}
	return geocache.PeerStats{}, false
}

// originByNode returns the OriginStats for the origin named node.
func originByNode(st geocache.Stats, node string) (geocache.OriginStats, bool) {
	for _, o := range st.Origins {
		if o.Node == node {
			return o, true
		}
	}
	return geocache.OriginStats{}, false
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// runqWait returns the time this process's threads have spent runnable but
// waiting for a CPU (the second field of /proc/self/task/*/schedstat),
// summed over its current threads: time the OS did not run them although
// they wanted to, because other threads (its own or other processes') held
// both cores.
func runqWait() time.Duration {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				total += v
			}
		}
	}
	return time.Duration(total)
}
