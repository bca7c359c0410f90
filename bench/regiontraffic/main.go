// Command regiontraffic measures the replication bytes a write costs when
// regions have several nodes: two regions of -nodes embedded nodes each
// (gossip inside a region, every node peering with every node of the
// other region), on loopback, in one process. Region A's nodes write -keys
// keys of -value bytes, each on its slot's primary; once every link has
// acknowledged everything, it prints the bytes the writing nodes sent on
// their replication links, per write, inside region A and to region B,
// counted by a wrapper of each node's dialer (the origin dials its peers
// and streams its log over that connection), for slot-owned storage
// (GossipConfig.SlotsOnly) and for full copies; and the bytes region B's
// nodes sent each other meanwhile, per write: with slot-owned storage, a
// slot's primary in B relays each write of A to the slot's other owners
// there, which A sends a stand-in (version and slot) instead.
//
//	cd bench && go run ./regiontraffic
//	go run ./regiontraffic -nodes 3 -keys 100000 -rounds 3
//
// With -gain it then closes the last node of region B and measures what
// its survivors take in to fill the slots they gain: the replication bytes
// they read (on every connection, accepted or dialed) from the close until
// each has no cold slot left and keeps every slot it owns, and that time.
//
// It uses only geocache's public API, so the same file measures an older
// commit (copy it into that commit's bench/; before geocache.KeySlot was
// public, at de9d68a, it needs a copy of internal/cluster's KeySlot).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/geocache/geocache"
)

var (
	flagNodes  = flag.Int("nodes", 3, "nodes per region")
	flagKeys   = flag.Int("keys", 100_000, "keys written in region A per round")
	flagValue  = flag.Int("value", 64, "value size in bytes")
	flagRounds = flag.Int("rounds", 3, "rounds per setup (setups interleaved)")
	flagSetups = flag.String("setups", "slots-only,full", "setups: slots-only (GossipConfig.SlotsOnly), full (every node keeps every key)")
	flagGain   = flag.Bool("gain", false, "then close a node of region B and measure what its survivors read to fill the slots they gain (slots-only)")
)

func main() {
	flag.Parse()
	fmt.Printf("# regions of %d nodes, %d keys of %d bytes written in region A per round\n", *flagNodes, *flagKeys, *flagValue)
	fmt.Println("# setup round in-region-bytes/write cross-region-bytes/write relayed-in-b-bytes/write [gain: bytes-read-by-survivors/key seconds]")
	for round := 1; round <= *flagRounds; round++ {
		for _, setup := range strings.Split(*flagSetups, ",") {
			res, err := run(setup == "slots-only")
			if err != nil {
				fmt.Fprintln(os.Stderr, "regiontraffic:", err)
				os.Exit(1)
			}
			fmt.Printf("%s %d %.1f %.1f %.1f", setup, round, res.in, res.cross, res.inB)
			if *flagGain {
				fmt.Printf(" gain %.1f %.3f", res.gainBytes, res.gainTime.Seconds())
			}
			fmt.Println()
		}
	}
}

// counter counts the bytes written on the connections a node dialed, by
// the region of the address dialed.
type counter struct {
	regionOf map[string]string // replication address → region
	mu       sync.Mutex
	bytes    map[string]*atomic.Int64 // region → bytes
	read     *atomic.Int64            // read by the node, on every connection
}

func (c *counter) of(region string) *atomic.Int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.bytes[region]
	if n == nil {
		n = new(atomic.Int64)
		c.bytes[region] = n
	}
	return n
}

func (c *counter) dial(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	region := c.regionOf[addr]
	c.mu.Unlock()
	return &countingConn{Conn: conn, n: c.of(region), read: c.read}, nil
}

type countingConn struct {
	net.Conn
	n    *atomic.Int64 // written
	read *atomic.Int64 // read, by the node that dialed or accepted it
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.read != nil {
		c.read.Add(int64(n))
	}
	return n, err
}

// countingListener counts the bytes read on the connections it accepts.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: new(atomic.Int64), read: l.read}, nil
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// result is one run's figures: bytes per write sent inside region A and to
// region B, and with -gain the bytes per key region B's survivors read to
// fill the slots they gained, and the time that took.
type result struct {
	in, cross, inB float64
	gainBytes      float64
	gainTime       time.Duration
}

// run builds the two regions, writes, waits for every link to catch up,
// and measures.
func run(slotsOnly bool) (res result, err error) {
	type member struct {
		region string
		ln     net.Listener
		node   *geocache.Node
		count  *counter
		read   atomic.Int64
	}
	regions := []string{"a", "b"}
	var members []*member
	regionOf := map[string]string{}
	for _, r := range regions {
		for range *flagNodes {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return res, err
			}
			members = append(members, &member{region: r, ln: ln})
			regionOf[ln.Addr().String()] = r
		}
	}
	defer func() {
		for _, m := range members {
			if m.node != nil {
				m.node.Close()
			} else {
				m.ln.Close()
			}
		}
	}()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	join := map[string]string{} // region → gossip address of its first node
	for i, m := range members {
		var peers []string
		for _, o := range members {
			if o.region != m.region {
				peers = append(peers, o.ln.Addr().String())
			}
		}
		m.count = &counter{regionOf: regionOf, bytes: map[string]*atomic.Int64{}, read: &m.read}
		g := &geocache.GossipConfig{Addr: "127.0.0.1:0", ClientAddr: fmt.Sprint("127.0.0.1:", 7000+i), SlotsOnly: slotsOnly}
		if j, ok := join[m.region]; ok {
			g.Join = []string{j}
		}
		m.node, err = geocache.Open(geocache.Config{
			Region: m.region, NodeID: uint32(i + 1), NodeName: fmt.Sprint(m.region, i+1),
			Listener: &countingListener{Listener: m.ln, read: &m.read}, Peers: peers, Dial: m.count.dial,
			MaxBytes: 1 << 30, Gossip: g, Logger: logger,
		})
		if err != nil {
			return res, err
		}
		if _, ok := join[m.region]; !ok {
			join[m.region] = m.node.RegionGossipAddr()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Every region settled: every member serving in every map, every link
	// up and caught up.
	if err := waitFor(ctx, "the regions settled", func() bool {
		for _, m := range members {
			sm, _ := m.node.SlotMap()
			st := m.node.Stats()
			if sm == nil || len(sm.Members()) != *flagNodes || st.RegionNodes == nil || st.RegionNodes.ColdSlots > 0 || !caughtUp(st) {
				return false
			}
			for _, mb := range sm.Members() {
				if mb.State.String() != "serving" {
					return false
				}
			}
		}
		return true
	}); err != nil {
		return res, err
	}
	writers := members[:*flagNodes]
	before := map[*member][2]int64{}
	for _, m := range members {
		before[m] = [2]int64{m.count.of("a").Load(), m.count.of("b").Load()}
	}
	sm, _ := writers[0].node.SlotMap()
	byID := map[uint32]*geocache.Node{}
	for _, m := range writers {
		byID[m.node.Stats().NodeID] = m.node
	}
	value := make([]byte, *flagValue)
	for i := range *flagKeys {
		key := fmt.Sprintf("key:%08d", i)
		if err := byID[sm.Primary(geocache.KeySlot(key)).ID].Set(ctx, key, value); err != nil {
			return res, fmt.Errorf("set %s: %w", key, err)
		}
	}
	// Region B's nodes acknowledge a write they take relayed once relayed.
	if err := waitFor(ctx, "every write acknowledged", func() bool {
		for _, m := range writers {
			if !caughtUp(m.node.Stats()) {
				return false
			}
		}
		return true
	}); err != nil {
		return res, err
	}
	var in, cross int64
	for _, m := range writers {
		in += m.count.of("a").Load() - before[m][0]
		cross += m.count.of("b").Load() - before[m][1]
	}
	var inB int64
	for _, m := range members[*flagNodes:] {
		inB += m.count.of("b").Load() - before[m][1]
	}
	res.in, res.cross = float64(in)/float64(*flagKeys), float64(cross)/float64(*flagKeys)
	res.inB = float64(inB) / float64(*flagKeys)
	if !*flagGain {
		return res, nil
	}
	// Region B loses its last node: its survivors gain its slots.
	gone := members[len(members)-1]
	survivors := members[*flagNodes : len(members)-1]
	var read0 int64
	for _, m := range survivors {
		read0 += m.read.Load()
	}
	start := time.Now()
	gone.node.Close()
	gone.node = nil
	if err := waitFor(ctx, "region B's survivors warm", func() bool {
		for _, m := range survivors {
			sm, _ := m.node.SlotMap()
			st := m.node.Stats().RegionNodes
			if sm == nil || len(sm.Members()) != *flagNodes-1 || st == nil || st.ColdSlots > 0 || st.KeptSlots != st.Slots {
				return false
			}
		}
		return true
	}); err != nil {
		return res, err
	}
	res.gainTime = time.Since(start)
	var read int64
	for _, m := range survivors {
		read += m.read.Load()
	}
	res.gainBytes = float64(read-read0) / float64(*flagKeys)
	return res, nil
}

// caughtUp reports whether every link of a node is up with nothing
// unacknowledged.
func caughtUp(st geocache.Stats) bool {
	if len(st.Peers) == 0 {
		return false
	}
	for _, p := range st.Peers {
		if !p.Connected || p.Lag > 0 {
			return false
		}
	}
	return true
}

func waitFor(ctx context.Context, what string, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
