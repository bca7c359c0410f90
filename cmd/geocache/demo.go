package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/resp"
)

var demoRegions = []string{"us-east", "eu-west", "ap-south"}

// demoCluster is three regions of real nodes on loopback, linked through
// latency proxies.
type demoCluster struct {
	nodes   []*geocache.Node
	servers []*resp.Server
	wan     *wan
	repl    []string // replication listen addresses
	resp    []string // Redis-protocol addresses
	done    sync.WaitGroup
}

// startDemoCluster starts the regions; each serves the Redis protocol on
// basePort+i (any free port if basePort is 0).
func startDemoCluster(latency time.Duration, maxEntries, basePort int) (*demoCluster, error) {
	c := &demoCluster{}
	var lns []net.Listener
	for range demoRegions {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
		c.repl = append(c.repl, ln.Addr().String())
	}
	w, err := newWAN(c.repl, latency)
	if err != nil {
		for _, l := range lns {
			l.Close()
		}
		return nil, err
	}
	c.wan = w
	for i, region := range demoRegions {
		var peers []string
		for j := range demoRegions {
			if j != i {
				peers = append(peers, w.addr(i, j))
			}
		}
		cfg := geocache.MultiRegion(region, uint32(i+1), c.repl[i], peers...)
		cfg.Listener = lns[i]
		cfg.MaxEntries = maxEntries
		cfg.PeerTimeout = time.Second
		n, err := geocache.Open(cfg)
		if err != nil {
			for _, l := range lns[i:] {
				l.Close()
			}
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	for i, n := range c.nodes {
		addr := "127.0.0.1:0"
		if basePort > 0 {
			addr = fmt.Sprintf("127.0.0.1:%d", basePort+i)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("listen for Redis clients of %s: %w (try -base-port 0 for free ports)", demoRegions[i], err)
		}
		srv, err := resp.New(resp.Config{Node: n})
		if err != nil {
			ln.Close()
			c.close()
			return nil, err
		}
		c.servers = append(c.servers, srv)
		c.resp = append(c.resp, ln.Addr().String())
		c.done.Go(func() { srv.Serve(ln) })
	}
	return c, nil
}

func (c *demoCluster) close() {
	for _, s := range c.servers {
		s.Close()
	}
	c.done.Wait()
	for _, n := range c.nodes {
		n.Close()
	}
	c.wan.close()
}

// connected waits until every node's links are up.
func (c *demoCluster) connected(ctx context.Context) error {
	for {
		up := true
		for _, n := range c.nodes {
			for _, p := range n.Stats().Peers {
				up = up && p.Connected
			}
		}
		if up {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("regions did not connect: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// visibleAfter polls node until key is readable and returns how long after
// start that was.
func visibleAfter(ctx context.Context, n *geocache.Node, key string, start time.Time) (time.Duration, error) {
	for {
		if _, err := n.Get(key); err == nil {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%8.2f ms", float64(d)/float64(time.Millisecond)) }

// demo runs the narrated tour of three regions and then keeps them serving
// until ctx ends or -duration passes.
func demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	latency := fs.Duration("latency", 40*time.Millisecond, "simulated one-way WAN latency between regions")
	ttl := fs.Duration("ttl", 2*time.Second, "time to live of the expiring entry")
	duration := fs.Duration("duration", 0, "how long to keep serving after the tour; 0 means until Ctrl-C")
	basePort := fs.Int("base-port", 6380, "Redis-protocol port of the first region (the others follow); 0 picks free ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *latency < 0 || *ttl <= 0 || *duration < 0 || *basePort < 0 || *basePort > 65533 {
		return errors.New("-latency and -duration must not be negative, -ttl must be positive, -base-port must be a port")
	}
	const capacity = 1000
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	p("geocache demo: three regions on this machine, %v one-way latency between them", *latency)
	c, err := startDemoCluster(*latency, capacity, *basePort)
	if err != nil {
		return err
	}
	defer c.close()
	setup, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.connected(setup); err != nil {
		return err
	}
	for i, r := range demoRegions {
		p("  %-9s redis %-16s replication %s", r, c.resp[i], c.repl[i])
	}
	us, eu, ap := c.nodes[0], c.nodes[1], c.nodes[2]

	p("")
	p("1. A write in us-east, read in the other regions")
	start := time.Now()
	if err := us.Set(ctx, "user:42", []byte(`{"name":"alice"}`)); err != nil {
		return err
	}
	p("   us-east   SET user:42       acknowledged %s (local apply)", ms(time.Since(start)))
	var wg sync.WaitGroup
	seen := make([]time.Duration, 3)
	errs := make([]error, 3)
	for i := 1; i < 3; i++ {
		wg.Go(func() { seen[i], errs[i] = visibleAfter(setup, c.nodes[i], "user:42", start) })
	}
	wg.Wait()
	for i := 1; i < 3; i++ {
		if errs[i] != nil {
			return errs[i]
		}
		p("   %-9s GET user:42       visible after %s", demoRegions[i], ms(seen[i]))
	}

	p("")
	p("2. LRU eviction: every region holds at most %d entries, and evicts on its own", capacity)
	if err := eu.Set(ctx, "item:0000", []byte("first")); err != nil {
		return err
	}
	if _, err := us.Wait(setup, 2); err != nil {
		return err
	}
	for i := 1; i <= capacity+200; i++ {
		if i == capacity/2 {
			// Once eu-west has the first half, it reads item:0000, which
			// there becomes the most recently used entry.
			if _, err := us.Wait(setup, 2); err != nil {
				return err
			}
			eu.Get("item:0000")
		}
		if err := us.Set(ctx, fmt.Sprintf("item:%04d", i), []byte("x")); err != nil {
			return err
		}
	}
	if _, err := us.Wait(setup, 2); err != nil {
		return err
	}
	for i, n := range c.nodes {
		st := n.Stats()
		_, err := n.Get("item:0000")
		p("   %-9s entries %5d   evicted %4d   item:0000 %s", demoRegions[i], st.Entries, st.Evictions, presence(err))
	}
	p("   eu-west read item:0000 midway, so it kept it; the others evicted it")

	p("")
	p("3. Expiry: SET session in eu-west with a TTL of %v; it expires at one instant everywhere", *ttl)
	if err := eu.Set(ctx, "session", []byte("token"), geocache.WithTTL(*ttl), geocache.WithAck(geocache.All)); err != nil {
		return err
	}
	it, _ := eu.Lookup("session")
	for i, n := range c.nodes {
		left, err := n.TTL("session")
		if err != nil {
			return fmt.Errorf("%s lost the session early: %w", demoRegions[i], err)
		}
		p("   %-9s TTL %s", demoRegions[i], ms(left))
	}
	gone := make([]time.Duration, 3)
	for i, n := range c.nodes {
		wg.Go(func() {
			for {
				if _, err := n.Get("session"); err != nil {
					gone[i] = time.Since(it.ExpireAt)
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	for i := range c.nodes {
		p("   %-9s gone %s after the expiry time", demoRegions[i], ms(gone[i]))
	}

	p("")
	p("4. ap-south is cut off, us-east keeps writing, then the link heals")
	c.wan.isolate(2)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("order:%03d", i)
		if err := us.Set(ctx, keys[i], []byte("placed")); err != nil {
			return err
		}
	}
	time.Sleep(2 * *latency)
	p("   ap-south  holds %3d of the 100 new orders while cut off", count(ap, keys))
	if err := c.wan.heal(); err != nil {
		return err
	}
	healed := time.Now()
	heal, cancelHeal := context.WithTimeout(ctx, 30*time.Second)
	defer cancelHeal()
	for count(ap, keys) < len(keys) {
		select {
		case <-heal.Done():
			return fmt.Errorf("ap-south did not catch up: %w", heal.Err())
		case <-time.After(time.Millisecond):
		}
	}
	p("   ap-south  holds %3d of 100, %s after the heal (reconnect + resume)", count(ap, keys), ms(time.Since(healed)))

	p("")
	p("5. A Quorum write from ap-south waits for a majority of regions")
	start = time.Now()
	if err := ap.Set(ctx, "config:v", []byte("2"), geocache.WithAck(geocache.Quorum)); err != nil {
		return err
	}
	p("   ap-south  SET config:v      acknowledged by a majority after %s (one round trip)", ms(time.Since(start)))

	p("")
	p("Try it with any Redis client:")
	for i, r := range demoRegions {
		host, port, _ := net.SplitHostPort(c.resp[i])
		p("  %-9s redis-cli -h %s -p %s", r, host, port)
	}
	p("  e.g. SET in one region, GET in another; GEOCACHE REGIONS shows the links; GEOCACHE VERSION key the version.")
	if *duration > 0 {
		p("Regions keep serving for %v.", *duration)
	} else {
		p("Regions keep serving; Ctrl-C stops them.")
	}
	wait := ctx
	if *duration > 0 {
		var stop context.CancelFunc
		wait, stop = context.WithTimeout(ctx, *duration)
		defer stop()
	}
	<-wait.Done()
	p("stopping")
	return nil
}

func presence(err error) string {
	if err == nil {
		return "kept"
	}
	return "evicted"
}

func count(n *geocache.Node, keys []string) int {
	c := 0
	for _, k := range keys {
		if _, err := n.Get(k); err == nil {
			c++
		}
	}
	return c
}
