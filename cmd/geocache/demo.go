package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
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
	tlsConfigs, err := demoTLS() // mutual TLS on every link (demo_tls.go)
	if err != nil {
		return nil, err
	}
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
		cfg.Listener, cfg.TLS = lns[i], tlsConfigs[i]
		cfg.MaxEntries = maxEntries
		// Pings go every quarter of PeerTimeout, and a link that hears
		// nothing for PeerTimeout is redialed: leave room for a round trip
		// plus a ping interval, however long the simulated WAN.
		cfg.PeerTimeout = time.Second + 4*latency
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
	err := poll(ctx, time.Millisecond, func() bool {
		for _, n := range c.nodes {
			for _, p := range n.Stats().Peers {
				if !p.Connected {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("regions did not connect: %w", err)
	}
	return nil
}

// stepTimeout bounds each wait of the tour. It only catches a hang: a
// loaded machine may take seconds for what takes milliseconds on an idle
// one, and the tour waits for what it narrates however long that takes.
const stepTimeout = time.Minute

// poll checks cond every interval until it holds (nil) or ctx ends (its
// error).
func poll(ctx context.Context, interval time.Duration, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
	return nil
}

// visibleAfter polls node until key is readable and returns how long after
// start that was.
func visibleAfter(ctx context.Context, n *geocache.Node, key string, start time.Time) (time.Duration, error) {
	err := poll(ctx, 100*time.Microsecond, func() bool {
		_, err := n.Get(key)
		return err == nil
	})
	return time.Since(start), err
}

func ms(d time.Duration) string { return fmt.Sprintf("%8.2f ms", float64(d)/float64(time.Millisecond)) }

const demoUsage = `usage: geocache demo [flags]

Starts three regions (us-east, eu-west, ap-south) on this machine, linked
through user-space proxies that add the WAN latency, and narrates a tour:
replication, LRU eviction, expiry, a partition and its heal, a Quorum write,
merging counters and hashes, a large value, and a region of three processes
losing one.
Every sentence it prints is what it observed. The regions then keep serving
the Redis protocol until Ctrl-C or -duration.

`

// demo runs the narrated tour of three regions and then keeps them serving
// until ctx ends or -duration passes. A bad flag returns an error wrapping
// errUsage; -h prints the usage and returns flag.ErrHelp.
func demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("geocache demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	latency := fs.Duration("latency", 40*time.Millisecond, "simulated one-way WAN latency between regions")
	ttl := fs.Duration("ttl", 2*time.Second, "time to live of the expiring entry")
	duration := fs.Duration("duration", 0, "how long to keep serving after the tour; 0 means until Ctrl-C")
	basePort := fs.Int("base-port", 6380, "Redis-protocol port of the first region (the others follow); 0 picks free ports")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, demoUsage)
			fs.SetOutput(out)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case *latency < 0 || *ttl <= 0 || *duration < 0 || *basePort < 0 || *basePort > 65533:
		return fmt.Errorf("%w: -latency and -duration must not be negative, -ttl must be positive, -base-port must be a port", errUsage)
	}
	const capacity = 1000
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	p("geocache demo: three regions on this machine, %v one-way latency between them", *latency)
	c, err := startDemoCluster(*latency, capacity, *basePort)
	if err != nil {
		return err
	}
	defer c.close()
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, stepTimeout) }
	setup, cancel := step()
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
	if err := demoVisibility(ctx, c, us, p); err != nil {
		return err
	}

	p("")
	p("2. LRU eviction, with a bound of %d entries in each region", capacity)
	if err := demoEviction(ctx, c, capacity, p); err != nil {
		return err
	}

	p("")
	p("3. Expiry: SET session in eu-west with a TTL of %v", *ttl)
	if err := demoExpiry(ctx, c, eu, *ttl, p); err != nil {
		return err
	}

	p("")
	p("4. ap-south is cut off, us-east keeps writing, then the link heals")
	if err := demoPartition(ctx, c, us, ap, *latency, p); err != nil {
		return err
	}

	p("")
	p("5. A Quorum write from ap-south waits for a majority of regions")
	start := time.Now()
	if err := ap.Set(ctx, "config:v", []byte("2"), geocache.WithAck(geocache.Quorum)); err != nil {
		return err
	}
	took := time.Since(start)
	var holders []string
	for i, n := range c.nodes {
		if v, err := n.Get("config:v"); err == nil && string(v) == "2" {
			holders = append(holders, demoRegions[i])
		}
	}
	if len(holders) < 2 {
		// A Quorum acknowledgement means a majority applied it; nothing
		// in the tour removes it, so this is a bug, not a slow machine.
		return fmt.Errorf("a Quorum write of ap-south was acknowledged but only %v hold it", holders)
	}
	p("   ap-south  SET config:v      acknowledged by a majority after %s; held now by %s", ms(took), strings.Join(holders, ", "))
	if rtt := 2 * *latency; rtt > 0 && took >= rtt {
		p("   (it waited at least one round trip between regions, %v)", rtt)
	}

	p("")
	p("6. Counters and hashes merge: at once, each region INCRs page:views %d times and HSETs its own field of profile:42", demoIncrs)
	if err := demoMerge(ctx, c, p); err != nil {
		return err
	}

	p("")
	p("7. A %d MiB value from us-east, and %d small writes right behind it", demoLargeMiB, demoSmall)
	if err := demoLarge(ctx, c, p); err != nil {
		return err
	}

	p("")
	p("8. A region of %d nodes sharing Redis Cluster's hash slots, each keeping its own (eu-central, %d geocache serve processes); one is killed", demoRegionNodes, demoRegionNodes)
	if err := demoRegion(ctx, p); err != nil {
		return err
	}

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

// demoIncrs is how many times each region increments the demo's counter.
const demoIncrs = 10

// demoMerge has every region increment one counter and write its own field
// of one hash at the same time, before any of the others' writes can reach
// it, and reports when every region reads every increment and every field:
// a last-writer-wins value would keep one region's.
func demoMerge(ctx context.Context, c *demoCluster, p printer) error {
	start := time.Now()
	errs := make(chan error, len(c.nodes))
	for i, n := range c.nodes {
		go func() {
			for range demoIncrs {
				if _, err := n.IncrBy(ctx, "page:views", 1); err != nil {
					errs <- err
					return
				}
			}
			_, err := n.HSet(ctx, "profile:42", []geocache.Field{{Name: []byte(demoRegions[i]), Value: []byte("seen")}})
			errs <- err
		}()
	}
	for range c.nodes {
		if err := <-errs; err != nil {
			return err
		}
	}
	want := int64(demoIncrs * len(c.nodes))
	for i, n := range c.nodes {
		var views []byte
		var fields []geocache.Field
		wait, cancel := context.WithTimeout(ctx, stepTimeout)
		err := poll(wait, 100*time.Microsecond, func() bool {
			views, _ = n.Get("page:views")
			fields, _ = n.HGetAll("profile:42")
			return string(views) == strconv.FormatInt(want, 10) && len(fields) == len(c.nodes)
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%s did not read every region's writes (page:views %q, profile:42 with %d fields): %w", demoRegions[i], views, len(fields), err)
		}
		names := make([]string, len(fields))
		for j, f := range fields {
			names[j] = string(f.Name)
		}
		p("   %-9s page:views %d   profile:42 fields %s   after %s", demoRegions[i], want, strings.Join(names, ","), ms(time.Since(start)))
	}
	p("   every increment counts and every field survives (a last-writer-wins value would keep one region's)")
	return nil
}

// The large value of the tour, and the small writes made right after it.
const (
	demoLargeMiB = 12
	demoSmall    = 20
)

// demoLarge writes a large value in us-east and small writes right after
// it, and reports when each region reads the last small write and the
// large value: the value crosses in parts, and the small writes pass it.
func demoLarge(ctx context.Context, c *demoCluster, p printer) error {
	us := c.nodes[0]
	big := make([]byte, demoLargeMiB<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	start := time.Now()
	if err := us.Set(ctx, "asset:video", big); err != nil {
		return err
	}
	for i := range demoSmall {
		if err := us.Set(ctx, fmt.Sprint("click:", i), []byte("1")); err != nil {
			return err
		}
	}
	last := fmt.Sprint("click:", demoSmall-1)
	wait, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	small := make([]time.Duration, len(c.nodes))
	large := make([]time.Duration, len(c.nodes))
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i := 1; i < len(c.nodes); i++ {
		n := c.nodes[i]
		wg.Go(func() {
			errs[i] = poll(wait, 100*time.Microsecond, func() bool {
				if _, err := n.TTL(last); small[i] == 0 && err == nil {
					small[i] = time.Since(start)
				}
				if _, err := n.TTL("asset:video"); large[i] == 0 && err == nil {
					large[i] = time.Since(start)
				}
				return small[i] > 0 && large[i] > 0
			})
		})
	}
	wg.Wait()
	for i := 1; i < len(c.nodes); i++ {
		if errs[i] != nil {
			return fmt.Errorf("%s did not read the large value and the writes behind it: %w", demoRegions[i], errs[i])
		}
		if v, err := c.nodes[i].GetShared("asset:video"); err != nil || !bytes.Equal(v, big) {
			return fmt.Errorf("%s holds a different asset:video (%d bytes, %v)", demoRegions[i], len(v), err)
		}
		p("   %-9s reads %s after %s; asset:video (%d MiB, intact) after %s", demoRegions[i], last, ms(small[i]), demoLargeMiB, ms(large[i]))
	}
	p("   the value crossed in 256 KiB parts; the small writes behind it went between them")
	return nil
}

// printer prints one line of the tour.
type printer func(format string, a ...any)

// demoVisibility writes in us-east and reports when the other regions
// see the write.
func demoVisibility(ctx context.Context, c *demoCluster, us *geocache.Node, p printer) error {
	start := time.Now()
	if err := us.Set(ctx, "user:42", []byte(`{"name":"alice"}`)); err != nil {
		return err
	}
	p("   us-east   SET user:42       acknowledged %s (local apply)", ms(time.Since(start)))
	wait, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var wg sync.WaitGroup
	seen := make([]time.Duration, len(c.nodes))
	errs := make([]error, len(c.nodes))
	for i := 1; i < len(c.nodes); i++ {
		wg.Go(func() { seen[i], errs[i] = visibleAfter(wait, c.nodes[i], "user:42", start) })
	}
	wg.Wait()
	for i := 1; i < len(c.nodes); i++ {
		if errs[i] != nil {
			return fmt.Errorf("user:42 did not reach %s: %w", demoRegions[i], errs[i])
		}
		p("   %-9s GET user:42       visible after %s", demoRegions[i], ms(seen[i]))
	}
	return nil
}

// demoEviction fills every region past capacity with us-east's writes,
// after eu-west wrote item:0000 (and it reached every region) and, midway,
// read it: eu-west's LRU order then differs from the others'. It reports
// what each region kept, and explains it only if it is what LRU predicts.
func demoEviction(ctx context.Context, c *demoCluster, capacity int, p printer) error {
	us, eu := c.nodes[0], c.nodes[1]
	wait, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	// Each region must have applied item:0000 before us-east's items, and
	// eu-west must hold the first half of them when it reads item:0000:
	// wait for both (Wait returns once the node's writes so far are
	// applied in that many other regions).
	if err := eu.Set(ctx, "item:0000", []byte("first")); err != nil {
		return err
	}
	if _, err := eu.Wait(wait, len(c.nodes)-1); err != nil {
		return fmt.Errorf("eu-west's item:0000 did not reach every region: %w", err)
	}
	for i := 1; i <= capacity+200; i++ {
		if i == capacity/2 {
			if _, err := us.Wait(wait, len(c.nodes)-1); err != nil {
				return fmt.Errorf("us-east's items did not reach every region: %w", err)
			}
			if _, err := eu.Get("item:0000"); err != nil {
				return fmt.Errorf("eu-west lost item:0000 before the read midway: %w", err)
			}
		}
		if err := us.Set(ctx, fmt.Sprintf("item:%04d", i), []byte("x")); err != nil {
			return err
		}
	}
	if _, err := us.Wait(wait, len(c.nodes)-1); err != nil {
		return fmt.Errorf("us-east's items did not reach every region: %w", err)
	}
	kept := make([]bool, len(c.nodes))
	within := true
	for i, n := range c.nodes {
		st := n.Stats()
		_, err := n.Get("item:0000")
		kept[i] = err == nil
		within = within && st.Entries <= capacity
		p("   %-9s entries %5d   evicted %4d   item:0000 %s", demoRegions[i], st.Entries, st.Evictions, presence(err))
	}
	switch {
	case !within:
		p("   a region holds more than %d entries: the bound did not hold", capacity)
	case kept[1] && !kept[0] && !kept[2]:
		p("   eu-west read item:0000 midway, so it kept it; the others evicted it")
	default:
		p("   eu-west read item:0000 midway; LRU predicts it alone keeps it, but this run saw otherwise")
	}
	return nil
}

// demoExpiry writes an entry with a TTL, acknowledged by every region, and
// reports that every region holds the same expiry time and when each
// stopped serving the entry.
func demoExpiry(ctx context.Context, c *demoCluster, eu *geocache.Node, ttl time.Duration, p printer) error {
	expireAt := time.Now().Add(ttl)
	if err := eu.Set(ctx, "session", []byte("token"), geocache.WithExpireAt(expireAt), geocache.WithAck(geocache.All)); err != nil {
		return err
	}
	var held time.Time // the expiry time the regions hold
	same := true
	for i, n := range c.nodes {
		it, err := n.Lookup("session")
		switch {
		case err != nil && time.Now().Before(expireAt):
			// The write was applied everywhere, and nothing but expiry
			// removes it before then.
			return fmt.Errorf("%s lost the session before its expiry time: %w", demoRegions[i], err)
		case err != nil:
			p("   %-9s already expired when looked at (this machine took longer than the TTL)", demoRegions[i])
			same = false
		case held.IsZero() || it.ExpireAt.Equal(held):
			held = it.ExpireAt
			p("   %-9s TTL %s", demoRegions[i], ms(time.Until(it.ExpireAt)))
		default:
			p("   %-9s expires at %s, unlike the region before it (%s)", demoRegions[i],
				it.ExpireAt.Format("15:04:05.000000"), held.Format("15:04:05.000000"))
			same = false
		}
	}
	if same {
		p("   every region holds the same expiry time, %s: it expires at one instant everywhere",
			held.Format("15:04:05.000"))
	} else {
		held = expireAt
	}
	wait, cancel := context.WithTimeout(ctx, ttl+stepTimeout)
	defer cancel()
	var wg sync.WaitGroup
	gone := make([]time.Duration, len(c.nodes))
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Go(func() {
			errs[i] = poll(wait, 200*time.Microsecond, func() bool {
				_, err := n.Get("session")
				return err != nil
			})
			gone[i] = time.Since(held)
		})
	}
	wg.Wait()
	for i := range c.nodes {
		if errs[i] != nil {
			return fmt.Errorf("%s still serves the session %v after its expiry time", demoRegions[i], gone[i])
		}
		p("   %-9s gone %s after the expiry time", demoRegions[i], ms(gone[i]))
	}
	return nil
}

// demoPartition isolates ap-south while us-east writes, heals, and reports
// how ap-south caught up.
func demoPartition(ctx context.Context, c *demoCluster, us, ap *geocache.Node, latency time.Duration, p printer) error {
	if err := c.wan.isolate(2); err != nil {
		return err
	}
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("order:%03d", i)
		if err := us.Set(ctx, keys[i], []byte("placed")); err != nil {
			return err
		}
	}
	time.Sleep(2 * latency)
	p("   ap-south  holds %3d of the 100 new orders while cut off", count(ap, keys))
	_, syncs := streamFrom(ap, "us-east")
	if err := c.wan.heal(); err != nil {
		return err
	}
	healed := time.Now()
	wait, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := poll(wait, time.Millisecond, func() bool { return count(ap, keys) == len(keys) }); err != nil {
		return fmt.Errorf("ap-south did not catch up: %w", err)
	}
	took := time.Since(healed)
	how := "reconnected"
	if applied, fullSyncs := streamFrom(ap, "us-east"); fullSyncs == syncs && applied == us.Stats().LastSeq {
		how = "reconnected, and us-east's stream resumed where it stopped: no full sync"
	} else if fullSyncs != syncs {
		how = "reconnected, with a full sync from us-east"
	}
	p("   ap-south  holds %3d of 100, %s after the heal (%s)", count(ap, keys), ms(took), how)
	return nil
}

// streamFrom returns how far n has applied the stream of the node of
// region, and how many full syncs it received from it.
func streamFrom(n *geocache.Node, region string) (applied, fullSyncs uint64) {
	for _, o := range n.Stats().Origins {
		if o.Region == region {
			applied, fullSyncs = max(applied, o.Applied), fullSyncs+o.FullSyncs
		}
	}
	return applied, fullSyncs
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
