package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/geocache/geocache"
)

// Scenario 3: memory of the writing node while one region is down, then
// that region's catch-up.
//
// A in this process (with the proxies and the writers), B and C in the
// remote child, all links through proxies without added latency. C goes
// down (closed, or its four proxies stopped); A writes at full speed for
// -down-duration while B keeps receiving; A's heap and Stats are sampled
// every 250 ms (peaks) and printed every -mem-sample. Then C comes back and
// the run measures the time until A's link to C has reconnected, sent a
// full sync (the log overflowed) and has nothing left unacknowledged.

func runMemory() error {
	mode := *flagDownMode
	if mode != "close" && mode != "partition" {
		return fmt.Errorf("-down-mode %q: want close or partition", mode)
	}
	maxBytes, logBytes := *flagMemMaxBytes, *flagMemLogBytes
	fmt.Println("## Scenario 3: memory with one region down, then catch-up (3 regions x 1 node)")
	fmt.Println()
	fmt.Printf("A (this process, with the 6 proxies and %d writer goroutine(s)) writes unique 16-byte keys with 100-byte values\n", *flagWriters)
	fmt.Printf("as fast as it can for %v while C is down (mode %q); B (child process) stays up. Every node: MaxBytes %s MiB,\n", *flagDownDuration, mode, mib(maxBytes))
	fmt.Printf("ReplicationLogBytes %s MiB. Memory columns are A's process, MiB: live@GC = heap found live by the last GC\n", mib(logBytes))
	fmt.Println("(runtime/metrics /gc/heap/live:bytes), the others from runtime.ReadMemStats; entries/bytes/log are A's Stats().")

	rem, err := startRemote()
	if err != nil {
		return err
	}
	defer rem.quit()
	addrs, err := rem.listen("B", "C")
	if err != nil {
		return err
	}
	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addrs["A"] = lnA.Addr().String()
	pn := newProxyNet()
	defer pn.close()
	names := []string{"A", "B", "C"}
	proxy := map[string]string{} // "X->Y" -> proxy address
	for _, from := range names {
		for _, to := range names {
			if from != to {
				p, err := pn.add(from+"->"+to, addrs[to], 0)
				if err != nil {
					return err
				}
				proxy[from+"->"+to] = p
			}
		}
	}
	cfg := geocache.MultiRegion("region-a", 1, addrs["A"], proxy["A->B"], proxy["A->C"])
	cfg.NodeName, cfg.Listener = "A", lnA
	cfg.MaxBytes, cfg.ReplicationLogBytes = maxBytes, logBytes
	a, err := geocache.Open(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	specB := nodeSpec{Name: "B", Region: "region-b", ID: 2, Peers: []string{proxy["B->A"], proxy["B->C"]}, MaxBytes: maxBytes, LogBytes: logBytes}
	specC := nodeSpec{Name: "C", Region: "region-c", ID: 3, Peers: []string{proxy["C->A"], proxy["C->B"]}, MaxBytes: maxBytes, LogBytes: logBytes}
	for _, s := range []nodeSpec{specB, specC} {
		if err := rem.open(s); err != nil {
			return err
		}
	}
	peer := func(st geocache.Stats, to string) geocache.PeerStats {
		p, _ := peerByAddr(st, proxy["A->"+to])
		return p
	}
	if err := waitFor(10*time.Second, "A connected to B and C", func() bool {
		st := a.Stats()
		return peer(st, "B").Connected && peer(st, "C").Connected
	}); err != nil {
		return err
	}
	runtime.GC()
	base := readProc()
	fmt.Printf("Before writing: A's process HeapInuse %s MiB, Sys %s MiB.\n", mib(int64(base.HeapInuse)), mib(int64(base.Sys)))

	// C goes down.
	cProxies := []string{"A->C", "C->A", "B->C", "C->B"}
	if mode == "close" {
		err = rem.closeNode("C")
	} else {
		pn.disable(cProxies...)
	}
	if err != nil {
		return err
	}
	if err := waitFor(10*time.Second, "A's link to C down", func() bool { return !peer(a.Stats(), "C").Connected }); err != nil {
		return err
	}
	fmt.Printf("C is down (%s).\n", mode)
	fmt.Println()

	type peak struct {
		heapInuse, heapAlloc, sys, sysMinusReleased uint64
		bytes, logBytes                             int64
		entries, logRecords                         int
	}
	var pk peak
	observe := func() (geocache.Stats, procStats) {
		st, p := a.Stats(), readProc()
		pk.heapInuse, pk.heapAlloc = max(pk.heapInuse, p.HeapInuse), max(pk.heapAlloc, p.HeapAlloc)
		pk.sys, pk.sysMinusReleased = max(pk.sys, p.Sys), max(pk.sysMinusReleased, p.Sys-p.HeapReleased)
		pk.bytes, pk.logBytes = max(pk.bytes, st.Bytes), max(pk.logBytes, st.LogBytes)
		pk.entries, pk.logRecords = max(pk.entries, st.Entries), max(pk.logRecords, st.LogRecords)
		return st, p
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t(s)\twrites\twrite/s\tlive@GC\tHeapInuse\tHeapAlloc\tSys\tSys-Released\tentries\tbytes\tlog recs\tlog\tB lag\tB backlog\tB full syncs\tC lag\tC backlog\tC conn\tA CPU\tSet errs\tB RTT\tB offset\t")
	var ws *writers
	row := func(t time.Duration, st geocache.Stats, p procStats, prevSeq uint64, prevT time.Duration, prevCPU time.Duration) {
		b, c := peer(st, "B"), peer(st, "C")
		errs := func() int64 {
			if ws == nil {
				return 0
			}
			return ws.errs.Load()
		}
		rate, cpu := "-", "-"
		if t-prevT >= 500*time.Millisecond {
			rate = fmt.Sprintf("%.0f", float64(st.LastSeq-prevSeq)/(t-prevT).Seconds())
			cpu = cpuPct(p.CPU-prevCPU, t-prevT)
		}
		fmt.Fprintf(tw, "%.1f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%d\t%s\t%d\t%d\t%s\t%v\t%s\t%d\t%s\t%s\t\n",
			t.Seconds(), st.LastSeq, rate,
			mib(int64(p.HeapLive)), mib(int64(p.HeapInuse)), mib(int64(p.HeapAlloc)), mib(int64(p.Sys)), mib(int64(p.Sys-p.HeapReleased)),
			st.Entries, mib(st.Bytes), st.LogRecords, mib(st.LogBytes), b.Lag, mib(b.Backlog), b.FullSyncs, c.Lag, mib(c.Backlog), c.Connected, cpu, errs(), b.RTT.Round(10*time.Microsecond), b.Offset.Round(10*time.Microsecond))
		tw.Flush()
	}
	t0 := time.Now()
	st0, p0 := observe()
	row(0, st0, p0, st0.LastSeq, 0, p0.CPU)
	ws = startWriters(a, *flagWriters, 0, 'm')
	prevSeq, prevT, prevCPU := st0.LastSeq, time.Duration(0), p0.CPU
	nextPrint := *flagMemSample
	for time.Since(t0) < *flagDownDuration {
		time.Sleep(250 * time.Millisecond)
		st, p := observe()
		if t := time.Since(t0); t >= nextPrint || t >= *flagDownDuration {
			row(t, st, p, prevSeq, prevT, prevCPU)
			prevSeq, prevT, prevCPU = st.LastSeq, t, p.CPU
			nextPrint += *flagMemSample
		}
	}
	var wsCatchup *writers
	written := ws.stop()
	stEnd, pEnd := observe()
	tEnd := time.Since(t0)
	row(tEnd, stEnd, pEnd, prevSeq, prevT, prevCPU)
	fmt.Fprintln(tw, "writers stopped\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t")
	tw.Flush()
	runtime.GC()
	afterGC := readProc()
	stNow := a.Stats()
	bst, bproc, err := rem.stats("B")
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Printf("Writing: %d Sets in %.1f s (%.0f/s), Set errors: %s; A's process used %s CPU, run-queue wait of its threads %s\n",
		written, tEnd.Seconds(), float64(written)/tEnd.Seconds(), ws.errors(), cpuPct(pEnd.CPU-p0.CPU, tEnd), perSec(pEnd.RunqWait-p0.RunqWait, tEnd))
	fmt.Printf("A's peaks (250 ms samples): HeapInuse %s MiB, HeapAlloc %s MiB, Sys %s MiB, Sys-HeapReleased %s MiB; process max RSS %s MiB\n",
		mib(int64(pk.heapInuse)), mib(int64(pk.heapAlloc)), mib(int64(pk.sys)), mib(int64(pk.sysMinusReleased)), mib(pEnd.MaxRSS))
	fmt.Printf("A's heap after writes + runtime.GC(): HeapAlloc %s MiB (live), HeapInuse %s MiB\n", mib(int64(afterGC.HeapAlloc)), mib(int64(afterGC.HeapInuse)))
	fmt.Printf("A's Stats peaks: entries %d, bytes %s MiB (MaxBytes %s MiB), log records %d, log bytes %s MiB (ReplicationLogBytes %s MiB)\n",
		pk.entries, mib(pk.bytes), mib(maxBytes), pk.logRecords, mib(pk.logBytes), mib(logBytes))
	verdict := func(ok bool) string {
		if ok {
			return "within bound"
		}
		return "EXCEEDS bound"
	}
	fmt.Printf("Bounds: entries bytes peak %s MiB <= %s MiB: %s; log bytes peak %s MiB <= %s MiB: %s\n",
		mib(pk.bytes), mib(maxBytes), verdict(pk.bytes <= maxBytes), mib(pk.logBytes), mib(logBytes), verdict(pk.logBytes <= logBytes))
	if o, ok := originByNode(bst, "A"); ok {
		bp := peer(stNow, "B")
		fmt.Printf("B (a moment after the writers stopped): applied A's seq %d of %d; A's lag to B %d, full syncs to B %d; B entries %d, bytes %s MiB; child process (B) HeapInuse %s MiB, max RSS %s MiB\n",
			o.Applied, stNow.LastSeq, bp.Lag, bp.FullSyncs, bst.Entries, mib(bst.Bytes), mib(int64(bproc.HeapInuse)), mib(bproc.MaxRSS))
	}
	cBefore := peer(stEnd, "C")
	fmt.Printf("A's link to C before C returns: connected %v, lag %d, backlog %s MiB, full syncs %d, last error %q\n",
		cBefore.Connected, cBefore.Lag, mib(cBefore.Backlog), cBefore.FullSyncs, cBefore.LastError)

	// C comes back.
	fmt.Println()
	if *flagCatchupRate > 0 {
		wsCatchup = startWriters(a, 1, *flagCatchupRate, 'n')
		fmt.Printf("A keeps writing at %.0f/s during the catch-up.\n", *flagCatchupRate)
	}
	seqAtBack := a.Stats().LastSeq
	tBack := time.Now()
	if mode == "close" {
		err = rem.open(specC)
	} else {
		err = pn.enable(cProxies...)
	}
	if err != nil {
		return err
	}
	fmt.Printf("C is back (%s); polling A's Stats().Peers[C] every 50 ms until C has acknowledged A's seq %d\n",
		map[string]string{"close": "node reopened: new incarnation, empty store", "partition": "proxies restarted"}[mode], seqAtBack)
	fmt.Println("(acknowledged = A's LastSeq - Lag; with no writes during the catch-up this is Lag == 0):")
	var tConn, tSync, tDone, tZero time.Duration
	lastPrint := time.Duration(-1)
	var cEnd geocache.PeerStats
	for {
		time.Sleep(50 * time.Millisecond)
		t := time.Since(tBack)
		st, _ := observe()
		c := peer(st, "C")
		if tConn == 0 && c.Connected {
			tConn = t
		}
		if tSync == 0 && c.FullSyncs > cBefore.FullSyncs {
			tSync = t
		}
		if tZero == 0 && c.Connected && c.Lag == 0 {
			tZero = t
		}
		done := c.Connected && st.LastSeq-c.Lag >= seqAtBack
		if t-lastPrint >= time.Second || done {
			fmt.Printf("  +%.2fs connected %v acknowledged %d lag %d backlog %s MiB full syncs %d\n", t.Seconds(), c.Connected, st.LastSeq-c.Lag, c.Lag, mib(c.Backlog), c.FullSyncs)
			lastPrint = t
		}
		if done {
			tDone, cEnd = t, c
			break
		}
		if t > *flagCatchupTimeout {
			cEnd = c
			break
		}
	}
	if wsCatchup != nil {
		// Keep writing a little longer to see whether the lag settles.
		for t := time.Since(tBack); tZero == 0 && t < tDone+5*time.Second; t = time.Since(tBack) {
			time.Sleep(50 * time.Millisecond)
			if c := peer(a.Stats(), "C"); c.Connected && c.Lag == 0 {
				tZero = t
			}
		}
		fmt.Printf("Catch-up writes made: %d, errors: %s; lag to C first 0 at %s\n", wsCatchup.stop(), wsCatchup.errors(),
			map[bool]string{true: "never (sampled every 50 ms)", false: fmt.Sprintf("+%.3fs", tZero.Seconds())}[tZero == 0])
	}
	if tDone == 0 {
		fmt.Printf("C did NOT catch up within %v: lag %d, full syncs %d, last error %q\n", *flagCatchupTimeout, cEnd.Lag, cEnd.FullSyncs, cEnd.LastError)
		return nil
	}
	cst, cproc, err := rem.stats("C")
	if err != nil {
		return err
	}
	stA := a.Stats()
	syncNote := "no full sync (resumed from the log)"
	if cEnd.FullSyncs > cBefore.FullSyncs {
		syncNote = fmt.Sprintf("full sync sent at +%.3fs", tSync.Seconds())
	}
	fmt.Printf("Catch-up: reconnected at +%.3fs, %s, caught up at +%.3fs after C came back (A redials with backoff 50 ms..2 s)\n",
		tConn.Seconds(), syncNote, tDone.Seconds())
	runtime.GC()
	final := readProc()
	fmt.Printf("A's heap after the catch-up + runtime.GC(): HeapAlloc %s MiB (live), HeapInuse %s MiB, Sys %s MiB\n",
		mib(int64(final.HeapAlloc)), mib(int64(final.HeapInuse)), mib(int64(final.Sys)))
	o, _ := originByNode(cst, "A")
	fmt.Printf("After catch-up: A entries %d (%s MiB); C entries %d (%s MiB), C applied A's seq %d of %d, C full syncs from A %d; child process (B and C) HeapInuse %s MiB\n",
		stA.Entries, mib(stA.Bytes), cst.Entries, mib(cst.Bytes), o.Applied, stA.LastSeq, o.FullSyncs, mib(int64(cproc.HeapInuse)))
	return nil
}
