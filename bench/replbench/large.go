package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/geocache/geocache"
)

// Scenario large: small writes while large values cross the same link.
//
// Two regions (A, B) of one node each; A's stream to B crosses a proxy
// with a one-way latency and a bandwidth limit (toxiproxy's latency and
// bandwidth toxics), so a 64 MiB value takes a while to cross. A writes
// small values at a fixed rate, as in the visibility scenario, twice: once
// alone, once while another goroutine on A keeps one large value in
// flight at all times (it writes the next as soon as B holds the last).
// Replication sends a large value in parts and lets the writes behind it
// pass, so the small writes' visibility should barely move; a stream that
// sent the value whole would hold each small write behind it for up to the
// value's whole transfer time, which is printed too.

var (
	flagLargeSize     = flag.Int64("large-size", 64<<20, "bytes of each large value (scenario large)")
	flagLargeLatency  = flag.Duration("large-latency", 20*time.Millisecond, "one-way latency of the link (scenario large)")
	flagLargeRate     = flag.Int64("large-link-kbs", 100_000, "bandwidth of A's stream to B in KB/s (scenario large; 100,000 KB/s = 800 Mbit/s)")
	flagLargeDuration = flag.Duration("large-duration", 10*time.Second, "writing time of each phase (scenario large)")
	flagLargeSmall    = flag.Float64("large-small-rate", 500, "small writes/s (scenario large)")
)

func runLarge() error {
	size := *flagLargeSize
	lat := *flagLargeLatency
	fmt.Println("## Scenario large: small writes while large values cross the same link (2 regions x 1 node, A writes, B reads)")
	fmt.Println()
	fmt.Printf("Link A->B: one-way %v, %d KB/s; small Sets (16-byte keys, 100-byte values) at %.0f/s for %v per phase;\n",
		lat, *flagLargeRate, *flagLargeSmall, *flagLargeDuration)
	fmt.Printf("large values of %s MiB written back to back on A in the second phase. Latency = first seen on B - Set returned on A\n", mib(size))
	fmt.Println("(B in a child process: its reader's and A's writer's wall clocks are the machine's one clock).")

	rem, err := startRemote()
	if err != nil {
		return err
	}
	defer rem.quit()
	addrs, err := rem.listen("B")
	if err != nil {
		return err
	}
	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pn := newProxyNet()
	defer pn.close()
	linkRate = *flagLargeRate // A's stream to B only
	peerOfA, err := pn.add("A->B", addrs["B"], lat)
	if err != nil {
		return err
	}
	linkRate = 0
	peerOfB, err := pn.add("B->A", lnA.Addr().String(), lat)
	if err != nil {
		return err
	}
	maxValue := int(max(size, 1<<20))
	maxBytes := max(*flagVisMaxBytes, 16*size)
	// The log holds several large values: a value over its bound would
	// push the small writes behind it out before they were sent.
	logBytes := 8 * size
	cfg := geocache.MultiRegion("region-a", 1, lnA.Addr().String(), peerOfA)
	cfg.NodeName, cfg.Listener = "A", lnA
	cfg.MaxBytes, cfg.MaxValueBytes, cfg.ReplicationLogBytes = maxBytes, maxValue, logBytes
	a, err := geocache.Open(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := rem.open(nodeSpec{Name: "B", Region: "region-b", ID: 2, Peers: []string{peerOfB},
		MaxBytes: maxBytes, LogBytes: logBytes, MaxValue: maxValue}); err != nil {
		return err
	}
	if err := waitFor(10*time.Second+4*lat, "A->B connected with a measured RTT", func() bool {
		p, _ := peerByAddr(a.Stats(), peerOfA)
		bst, _, err := rem.stats("B")
		o, ok := originByNode(bst, "A")
		return err == nil && p.Connected && p.RTT > 0 && ok && o.Connected
	}); err != nil {
		return err
	}

	phase := func(tag byte, large bool) (dist, int, []time.Duration, string, error) {
		n := int(*flagLargeSmall * flagLargeDuration.Seconds())
		keys := make([]string, n)
		buf := make([]byte, 0, 32)
		for i := range keys {
			keys[i] = key16(buf, tag, 0, i)
		}
		if err := rem.watch("B", keys); err != nil {
			return dist{}, 0, nil, "", err
		}
		stop := make(chan struct{})
		var transfers []time.Duration
		var spans [][2]int64
		var largeErr error
		var wg sync.WaitGroup
		if large {
			wg.Go(func() { transfers, spans, largeErr = largeWriter(a, size, stop) })
			time.Sleep(200 * time.Millisecond) // the first value is in flight
		}
		val := make([]byte, 100)
		sent := make([]int64, n)
		proc0 := readProc()
		start := time.Now()
		var setErr error
		err := paced(*flagLargeSmall, n, func(i int) bool {
			if setErr = a.Set(context.Background(), keys[i], val); setErr != nil {
				return false
			}
			sent[i] = time.Now().UnixNano()
			return true
		})
		close(stop)
		wg.Wait()
		cpu := cpuPct(readProc().CPU-proc0.CPU, time.Since(start))
		seen, serr := rem.seen("B", *flagGrace)
		switch {
		case err != nil:
			return dist{}, 0, nil, "", fmt.Errorf("%w: %v", err, setErr)
		case largeErr != nil:
			return dist{}, 0, nil, "", largeErr
		case serr != nil:
			return dist{}, 0, nil, "", serr
		}
		if *flagVisDump != "" {
			f, err := os.Create(fmt.Sprintf("%s-large-%c.csv", *flagVisDump, tag))
			if err != nil {
				return dist{}, 0, nil, "", err
			}
			w := bufio.NewWriter(f)
			fmt.Fprintln(w, "sent_unix_ns,B_ns")
			for i := range n {
				fmt.Fprintf(w, "%d,%d\n", sent[i], seen[i]-sent[i])
			}
			for _, sp := range spans {
				fmt.Fprintf(w, "large,%d,%d\n", sp[0], sp[1])
			}
			w.Flush()
			f.Close()
		}
		ds := make([]time.Duration, 0, n)
		missing := 0
		for i := range n {
			if seen[i] == 0 {
				missing++
				continue
			}
			ds = append(ds, time.Duration(seen[i]-sent[i]))
		}
		return summarize(ds), missing, transfers, cpu, nil
	}
	quiet, qmiss, _, qcpu, err := phase('q', false)
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	loaded, lmiss, transfers, lcpu, err := phase('l', true)
	if err != nil {
		return err
	}
	fmt.Println()
	for _, r := range []struct {
		name    string
		d       dist
		missing int
		cpu     string
	}{{"alone", quiet, qmiss, qcpu}, {"with large values in flight", loaded, lmiss, lcpu}} {
		fmt.Printf("  small writes %-28s n %d  missing %d  min %s  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms  (A's process CPU %s)\n",
			r.name, r.d.n, r.missing, ms(r.d.min), ms(r.d.p50), ms(r.d.p90), ms(r.d.p99), ms(r.d.p999), ms(r.d.max), r.cpu)
	}
	t := summarize(transfers)
	fmt.Printf("  large values: %d crossed during the second phase; Set with WithAck(All) on A, from call to return: min %s  p50 %s  max %s ms\n",
		t.n, ms(t.min), ms(t.p50), ms(t.max))
	if t.n > 0 {
		fmt.Printf("  => p99 of small writes with a large value in flight: %s ms, against %s ms alone and %s ms for a large value to cross\n",
			ms(loaded.p99), ms(quiet.p99), ms(t.p50))
	}
	return nil
}

// largeWriter writes large values on A back to back, each acknowledged by
// B (WithAck(All)) before the next, and deletes each once B holds it
// (nothing evicts the small keys), until stop; it returns the time each
// Set took.
func largeWriter(a *geocache.Node, size int64, stop <-chan struct{}) ([]time.Duration, [][2]int64, error) {
	value := make([]byte, size)
	for i := range value {
		value[i] = byte(i)
	}
	var out []time.Duration
	var spans [][2]int64 // Unix ns of each Set's call and return
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out, spans, nil
		default:
		}
		key := fmt.Sprint("large:", i)
		t0 := time.Now()
		if err := a.Set(context.Background(), key, value, geocache.WithAck(geocache.All)); err != nil {
			return out, spans, fmt.Errorf("large Set: %w", err)
		}
		out = append(out, time.Since(t0))
		spans = append(spans, [2]int64{t0.UnixNano(), time.Now().UnixNano()})
		if err := a.Delete(context.Background(), key); err != nil {
			return out, spans, fmt.Errorf("large Delete: %w", err)
		}
	}
}
