// Command transport measures geocache's replication workload over two
// transports on loopback TCP, in one process: geocache's own length-prefixed
// wire frames on a plain TCP connection, and gRPC bidirectional streaming
// carrying the same messages serialized by the same wire encoder (a custom
// grpc codec), each also in a variant (frames with coalesced writes and
// acks; gRPC with a static 1 MiB flow-control window). See
// docs/transport.md for the method and the results.
//
//	cd bench/transport && go run .
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/geocache/geocache/internal/wire"
)

// transport opens sender-side links to a receiver it runs in this process.
type transport interface {
	name() string
	open() (link, error)
	shutdown()
}

// link is the sender's end of one connection (one stream) to the receiver.
// send and recvAck may be called from different goroutines.
type link interface {
	send(*wire.Ops) error
	flush() error // write what send may have held back
	recvAck(*wire.Ack) error
	closeSend() error
	close() error
	counts() sockCounts // on the sender's socket
}

type sockCounts struct {
	sent, rcv     int64 // bytes
	writes, reads int64 // calls to Write and Read
}

func (c *countingConn) counts() sockCounts {
	return sockCounts{c.written.Load(), c.read.Load(), c.writes.Load(), c.reads.Load()}
}

// countingConn counts the bytes that cross the socket, including every
// header the transport adds.
type countingConn struct {
	net.Conn
	read, written atomic.Int64
	reads, writes atomic.Int64 // calls
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	c.reads.Add(1)
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	c.writes.Add(1)
	return n, err
}

var (
	flagThroughput = flag.Duration("throughput", 5*time.Second, "timed window of each throughput run")
	flagLatency    = flag.Duration("latency", 3*time.Second, "timed window of each latency run")
	flagRounds     = flag.Int("rounds", 3, "rounds; each runs every transport once per workload, order alternating")
	flagBatch      = flag.Int("batch", 64, "ops per message in the throughput workload")
	flagKey        = flag.Int("key", 16, "key bytes")
	flagValue      = flag.Int("value", 100, "value bytes")
	flagWindow     = flag.Int("grpc-window", 1<<20, "initial stream and connection flow-control window of the grpc-window transport, both sides")
	flagTransports = flag.String("transports", "frames,grpc,frames-coalesced,grpc-window", "transports for the throughput workload (the first is the baseline of the ratios): frames, grpc (grpc's defaults), frames-coalesced, grpc-window")
	flagLatencyTr  = flag.String("latency-transports", "frames,grpc,grpc-window", "transports for the latency workload (frames-coalesced writes each message at once here, like frames)")
)

const origin = 1

// dataset is the ops the sender cycles through, made before timing so the
// timed loops only slice them.
type dataset struct {
	ops []wire.Op
}

func newDataset(n, keyLen, valueLen int) *dataset {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := make([]wire.Op, n)
	for i := range ops {
		key := fmt.Sprintf("%0*d", keyLen, i)
		val := make([]byte, valueLen)
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		ops[i] = wire.Op{
			Kind:    wire.KindSet,
			Key:     key[len(key)-keyLen:],
			Value:   val,
			HLC:     uint64(time.Now().UnixMilli())<<16 | uint64(i&0xffff),
			VOrigin: origin,
		}
	}
	return &dataset{ops: ops}
}

// batch returns the ops of message i, n ops long.
func (d *dataset) batch(i uint64, n int) []wire.Op {
	k := len(d.ops) / n
	s := int(i%uint64(k)) * n
	return d.ops[s : s+n]
}

// meter samples wall time, process CPU time (user+sys, every goroutine of
// both sides), heap allocations and socket bytes.
type meter struct {
	wall    time.Time
	cpu     time.Duration
	mallocs uint64
	sock    sockCounts
}

func sample(l link) meter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	m := meter{
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		mallocs: ms.Mallocs,
	}
	m.sock = l.counts()
	m.wall = time.Now()
	return m
}

type result struct {
	transport string
	workload  string
	ops       uint64
	msgs      uint64
	acks      uint64
	wall      time.Duration
	cpu       time.Duration
	mallocs   uint64
	sock      sockCounts
	rtts      []time.Duration // latency only, sorted
}

func (r *result) opsPerSec() float64 { return float64(r.ops) / r.wall.Seconds() }

// payloadMBps counts key and value bytes only: the same for both transports.
func (r *result) payloadMBps() float64 {
	return float64(r.ops) * float64(*flagKey+*flagValue) / r.wall.Seconds() / 1e6
}

func (r *result) cpuPerOp() time.Duration { return r.cpu / time.Duration(r.ops) }
func (r *result) allocsPerOp() float64    { return float64(r.mallocs) / float64(r.ops) }
func (r *result) sockBytesPerOp() float64 { return float64(r.sock.sent+r.sock.rcv) / float64(r.ops) }
func (r *result) writesPerMsg() float64   { return float64(r.sock.writes) / float64(r.msgs) }
func (r *result) readsPerMsg() float64    { return float64(r.sock.reads) / float64(r.msgs) }
func (r *result) cpuUtil() float64        { return r.cpu.Seconds() / r.wall.Seconds() }
func (r *result) pct(p float64) time.Duration {
	if len(r.rtts) == 0 {
		return 0
	}
	i := int(p * float64(len(r.rtts)-1))
	return r.rtts[i]
}

func (r *result) String() string {
	s := fmt.Sprintf("%-6s %-10s ops=%-9d msgs=%-8d acks=%-8d wall=%-6.3fs ops/s=%-10.0f payload=%7.1f MB/s cpu=%5.0f%% cpu/op=%-8v allocs/op=%6.2f sock B/op=%6.1f sender writes/msg=%.2f reads/msg=%.2f",
		r.transport, r.workload, r.ops, r.msgs, r.acks, r.wall.Seconds(), r.opsPerSec(), r.payloadMBps(), 100*r.cpuUtil(),
		r.cpuPerOp(), r.allocsPerOp(), r.sockBytesPerOp(), r.writesPerMsg(), r.readsPerMsg())
	if len(r.rtts) > 0 {
		s += fmt.Sprintf(" p50=%v p99=%v p99.9=%v max=%v", r.pct(0.50), r.pct(0.99), r.pct(0.999), r.rtts[len(r.rtts)-1])
	}
	return s
}

func (r *result) fill(a, b meter) {
	r.wall = b.wall.Sub(a.wall)
	r.cpu = b.cpu - a.cpu
	r.mallocs = b.mallocs - a.mallocs
	r.sock = sockCounts{
		sent:   b.sock.sent - a.sock.sent,
		rcv:    b.sock.rcv - a.sock.rcv,
		writes: b.sock.writes - a.sock.writes,
		reads:  b.sock.reads - a.sock.reads,
	}
}

// throughput streams batches as fast as the link takes them for d: the
// sender goroutine (this one) encodes and sends, another goroutine reads the
// acks. The window ends when the last batch sent before d elapsed has been
// acknowledged, so every op counted crossed and was decoded.
func throughput(t transport, data *dataset, d time.Duration, batch int) (*result, error) {
	l, err := t.open()
	if err != nil {
		return nil, err
	}
	defer l.close()

	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		acked    uint64
		ackErr   error
		ackCount uint64
	)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		var a wire.Ack
		for {
			err := l.recvAck(&a)
			mu.Lock()
			if err != nil {
				ackErr = err
				cond.Broadcast()
				mu.Unlock()
				return
			}
			acked = a.Seq
			ackCount++
			cond.Broadcast()
			mu.Unlock()
		}
	}()
	waitAcked := func(seq uint64) error {
		mu.Lock()
		defer mu.Unlock()
		for acked < seq && ackErr == nil {
			cond.Wait()
		}
		if acked < seq {
			return fmt.Errorf("acked %d of %d: %w", acked, seq, ackErr)
		}
		return nil
	}

	next := uint64(1)
	var msgs uint64
	run := func(d time.Duration) error {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			ops := wire.Ops{Origin: origin, FirstSeq: next, Ops: data.batch(msgs, batch)}
			if err := l.send(&ops); err != nil {
				return err
			}
			next += uint64(batch)
			msgs++
		}
		if err := l.flush(); err != nil {
			return err
		}
		return waitAcked(next - 1)
	}

	// Warm up: connection buffers, grpc's flow-control window estimate,
	// pools.
	if err := run(300 * time.Millisecond); err != nil {
		return nil, err
	}
	runtime.GC()
	first, msgs0 := next, msgs
	mu.Lock()
	acks0 := ackCount
	mu.Unlock()
	a := sample(l)
	if err := run(d); err != nil {
		return nil, err
	}
	b := sample(l)
	mu.Lock()
	acks1 := ackCount
	mu.Unlock()
	r := &result{transport: t.name(), workload: "throughput", ops: next - first, msgs: msgs - msgs0, acks: acks1 - acks0}
	r.fill(a, b)

	if err := l.closeSend(); err != nil {
		return nil, err
	}
	<-readerDone
	if ackErr != io.EOF {
		return nil, fmt.Errorf("ack reader: %w", ackErr)
	}
	if acked != next-1 {
		return nil, fmt.Errorf("last ack %d, last sequence number %d", acked, next-1)
	}
	return r, nil
}

// latency sends one op per message and waits for its ack before sending
// the next (one goroutine does both), for d, and records every round trip.
func latency(t transport, data *dataset, d time.Duration) (*result, error) {
	l, err := t.open()
	if err != nil {
		return nil, err
	}
	defer l.close()

	seq := uint64(0)
	rtts := make([]time.Duration, 0, 1<<18)
	var ack wire.Ack
	pingPong := func() (time.Duration, error) {
		seq++
		ops := wire.Ops{Origin: origin, FirstSeq: seq, Ops: data.batch(seq, 1)}
		t0 := time.Now()
		if err := l.send(&ops); err != nil {
			return 0, err
		}
		if err := l.flush(); err != nil {
			return 0, err
		}
		if err := l.recvAck(&ack); err != nil {
			return 0, err
		}
		rtt := time.Since(t0)
		if ack.Seq != seq {
			return 0, fmt.Errorf("ack %d for %d", ack.Seq, seq)
		}
		return rtt, nil
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		if _, err := pingPong(); err != nil {
			return nil, err
		}
	}
	runtime.GC()
	first := seq
	a := sample(l)
	for end := a.wall.Add(d); time.Now().Before(end); {
		rtt, err := pingPong()
		if err != nil {
			return nil, err
		}
		rtts = append(rtts, rtt)
	}
	b := sample(l)
	r := &result{transport: t.name(), workload: "latency", ops: seq - first, msgs: seq - first, acks: seq - first}
	r.fill(a, b)
	slices.Sort(rtts)
	r.rtts = rtts
	if err := l.closeSend(); err != nil {
		return nil, err
	}
	if err := l.recvAck(&ack); err != io.EOF {
		return nil, fmt.Errorf("after close: %v", err)
	}
	return r, nil
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "transport:", err)
		os.Exit(1)
	}
}

func run() error {
	header()
	data := newDataset(64*1024, *flagKey, *flagValue)

	var ts, lts []transport
	byName := map[string]transport{}
	get := func(name string) (transport, error) {
		if t, ok := byName[name]; ok {
			return t, nil
		}
		var t transport
		var err error
		switch name {
		case "frames":
			t, err = newFramesTransport(false)
		case "frames-coalesced":
			t, err = newFramesTransport(true)
		case "grpc":
			t, err = newGRPCTransport(0)
		case "grpc-window":
			t, err = newGRPCTransport(int32(*flagWindow))
		default:
			err = fmt.Errorf("unknown transport %q", name)
		}
		if err != nil {
			return nil, err
		}
		byName[name] = t
		return t, nil
	}
	for _, name := range strings.Split(*flagTransports, ",") {
		t, err := get(name)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	for _, name := range strings.Split(*flagLatencyTr, ",") {
		t, err := get(name)
		if err != nil {
			return err
		}
		lts = append(lts, t)
	}
	defer func() {
		for _, t := range byName {
			t.shutdown()
		}
	}()

	// One message's frame size, for the header.
	ex := wire.Ops{Origin: origin, FirstSeq: 1 << 20, Ops: data.batch(0, *flagBatch)}
	fmt.Printf("workload: throughput: %d ops/message (%d-byte frame), %v per run; latency: 1 op/message (%d-byte frame), ping-pong, %v per run; %d rounds\n\n",
		*flagBatch, len(ex.Append(nil)), *flagThroughput, len((&wire.Ops{Origin: origin, FirstSeq: 1 << 20, Ops: data.batch(0, 1)}).Append(nil)),
		*flagLatency, *flagRounds)

	results := map[string][]*result{} // "transport/workload"
	order := func(ts []transport, round int) []transport {
		o := slices.Clone(ts)
		if round%2 == 1 {
			slices.Reverse(o)
		}
		return o
	}
	for round := range *flagRounds {
		fmt.Printf("round %d\n", round+1)
		for _, t := range order(ts, round) {
			r, err := throughput(t, data, *flagThroughput, *flagBatch)
			if err != nil {
				return fmt.Errorf("%s throughput: %w", t.name(), err)
			}
			fmt.Println(" ", r)
			results[t.name()+"/throughput"] = append(results[t.name()+"/throughput"], r)
		}
		for _, t := range order(lts, round) {
			r, err := latency(t, data, *flagLatency)
			if err != nil {
				return fmt.Errorf("%s latency: %w", t.name(), err)
			}
			fmt.Println(" ", r)
			results[t.name()+"/latency"] = append(results[t.name()+"/latency"], r)
		}
	}
	fmt.Println()
	summary(ts, lts, results)
	fmt.Printf("\nload average at end: %s\n", loadavg())
	return nil
}

func median(rs []*result, f func(*result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return medianOf(v)
}

func medianOf(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func spread(rs []*result, f func(*result) float64) float64 {
	lo, hi := f(rs[0]), f(rs[0])
	for _, r := range rs {
		lo, hi = min(lo, f(r)), max(hi, f(r))
	}
	return (hi - lo) / median(rs, f)
}

func summary(ts, lts []transport, results map[string][]*result) {
	type metric struct {
		name string
		f    func(*result) float64
		unit string
	}
	ns := func(d time.Duration) float64 { return float64(d.Nanoseconds()) }
	tables := []struct {
		workload string
		ts       []transport
		metrics  []metric
	}{
		{"throughput", ts, []metric{
			{"ops/s", (*result).opsPerSec, ""},
			{"payload MB/s", (*result).payloadMBps, ""},
			{"CPU µs/op", func(r *result) float64 { return ns(r.cpuPerOp()) / 1e3 }, ""},
			{"CPU use (of 200%)", func(r *result) float64 { return 100 * r.cpuUtil() }, "%"},
			{"allocs/op", (*result).allocsPerOp, ""},
			{"socket bytes/op", (*result).sockBytesPerOp, ""},
			{"acks/message", func(r *result) float64 { return float64(r.acks) / float64(r.msgs) }, ""},
			{"sender writes/msg", (*result).writesPerMsg, ""},
			{"sender reads/msg", (*result).readsPerMsg, ""},
		}},
		{"latency", lts, []metric{
			{"p50 RTT µs", func(r *result) float64 { return ns(r.pct(0.5)) / 1e3 }, ""},
			{"p99 RTT µs", func(r *result) float64 { return ns(r.pct(0.99)) / 1e3 }, ""},
			{"round trips/s", (*result).opsPerSec, ""},
			{"CPU µs/op", func(r *result) float64 { return ns(r.cpuPerOp()) / 1e3 }, ""},
			{"allocs/op", (*result).allocsPerOp, ""},
			{"socket bytes/op", (*result).sockBytesPerOp, ""},
			{"sender writes/msg", (*result).writesPerMsg, ""},
			{"sender reads/msg", (*result).readsPerMsg, ""},
		}},
	}
	for _, tb := range tables {
		fmt.Printf("%s: median of %d runs ±(max-min)/median; in brackets the median over rounds of the ratio to %s in the same round\n\n", tb.workload, *flagRounds, tb.ts[0].name())
		fmt.Printf("| %s |", tb.workload)
		for _, t := range tb.ts {
			fmt.Printf(" %s |", t.name())
		}
		fmt.Printf("\n|---|%s\n", strings.Repeat("---:|", len(tb.ts)))
		for _, m := range tb.metrics {
			fmt.Printf("| %s |", m.name)
			base := results[tb.ts[0].name()+"/"+tb.workload]
			for i, t := range tb.ts {
				rs := results[t.name()+"/"+tb.workload]
				med := median(rs, m.f)
				fmt.Printf(" %s ±%.0f%%", fmtNum(med), 100*spread(rs, m.f))
				if i > 0 {
					ratios := make([]float64, len(rs))
					for j := range rs {
						ratios[j] = m.f(rs[j]) / m.f(base[j])
					}
					fmt.Printf(" (%.2fx)", medianOf(ratios))
				}
				fmt.Print(" |")
			}
			fmt.Println()
		}
		fmt.Println()
	}
}

func fmtNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func header() {
	fmt.Printf("date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("go: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("cpu: %s\n", cpuModel())
	fmt.Printf("grpc window: %s\n", map[bool]string{true: fmt.Sprint(*flagWindow), false: "grpc default"}[*flagWindow > 0])
	fmt.Printf("load average at start: %s\n", loadavg())
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
