package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// FaultEvent is a fault as it was injected: real start and end times (Unix
// ns) and whether the final heal ended it.
type FaultEvent struct {
	Fault
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Healed bool   `json:"healed,omitempty"`
	Err    string `json:"err,omitempty"`
}

// harness is one run in progress.
type harness struct {
	cfg     Config
	clock   *runClock
	cl      *cluster
	sched   Schedule
	writers []*writer
	prober  *prober
	tls     []TLSProbe // nil: plaintext links
	keys    []string   // every key a client may touch but the counters
	// counters are the counter keys: only incremented (counter.go)
	counters []string
	// hashes are the hash keys: only HSET and HDEL (hash.go)
	hashes []string

	mu     sync.Mutex
	events []*FaultEvent
	active map[*FaultEvent]func() error // undo of each fault in force
}

// Run runs one chaos run and checks it. The error is for a run that could
// not be carried out (a binary that does not start, ctx cancelled); a run
// that found violations returns a Report with Pass false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults(true)
	if err != nil {
		return nil, err
	}
	var sched Schedule
	if cfg.Schedule != nil {
		sched = *cfg.Schedule
		sched.Faults = slices.Clone(sched.Faults)
	} else {
		sched = Generate(cfg)
	}
	if len(sched.Offsets) == 0 {
		sched.Offsets = make([]time.Duration, cfg.nodes())
	}
	cfg.logf("chaos: seed %d: %s, %v of faults and writes, %v one-way latency between regions; schedule:\n%s",
		cfg.Seed, sizes(cfg.RegionSizes), cfg.Duration, cfg.Latency, sched)

	quietRedis.Do(func() { redis.SetLogger(discard{}) })
	clock := newRunClock()
	cl, err := newCluster(cfg, clock, sched.Offsets)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	h := &harness{cfg: cfg, clock: clock, cl: cl, sched: sched, active: map[*FaultEvent]func() error{}}
	if _, err := h.waitLinks(ctx, 20*time.Second); err != nil {
		return nil, fmt.Errorf("chaos: links did not come up: %w", err)
	}
	if cl.certs != nil {
		// The links are up: each runs TLS end to end if each node's
		// replication port speaks nothing else.
		if h.tls, err = cl.probeTLS(ctx); err != nil {
			return nil, fmt.Errorf("chaos: probing the nodes' TLS: %w", err)
		}
		n := 0
		for _, p := range h.tls {
			if p.ok() {
				n++
			}
		}
		cfg.logf("chaos: mutual TLS: %d of %d nodes accepted the run's certificate and refused plaintext, no certificate and another CA's", n, len(h.tls))
	}

	var clients []*redis.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	client := func(addr string, ack string, rt time.Duration) *redis.Client {
		c := newClient(addr, ack, rt)
		clients = append(clients, c)
		return c
	}
	w := cfg.WritersPerNode
	for i, nd := range cl.nodes {
		for k := range w {
			idx := i*w + k
			wr := &writer{
				h: h, idx: idx, nd: nd,
				local:   client(nd.addr, "", opTimeout),
				quorum:  client(nd.addr, "QUORUM", opTimeout),
				all:     client(nd.addr, "ALL", opTimeout),
				rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(idx)+1)),
				lastVer: map[string]ownVer{},
			}
			for j := range cfg.OwnKeys {
				wr.own = append(wr.own, ownKey(idx, j))
			}
			for j := range cfg.SharedKeys {
				if j%w == k {
					wr.shared = append(wr.shared, sharedKey(j))
				}
			}
			h.writers = append(h.writers, wr)
			h.keys = append(h.keys, wr.own...)
		}
	}
	for j := range cfg.SharedKeys {
		h.keys = append(h.keys, sharedKey(j))
	}
	h.counters = counterKeys(cfg.CounterKeys, h.keys)
	h.hashes = workloadKeys("h", cfg.HashKeys, h.keys)
	h.prober = &prober{h: h}
	watchers := make([]*redis.Client, len(cl.nodes))
	for i, nd := range cl.nodes {
		h.prober.clients = append(h.prober.clients, client(nd.addr, "", opTimeout))
		watchers[i] = client(nd.addr, "", time.Second)
	}

	start := clock.now()
	stop := make(chan struct{})
	stepDone := make(chan time.Duration, 1)
	go func() { stepDone <- watchWallClock(clock, stop) }()
	var wg sync.WaitGroup
	for _, wr := range h.writers {
		wg.Go(func() { wr.run(stop) })
	}
	stopProbes := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Go(func() { h.prober.run(stopProbes) })
	for i, c := range watchers {
		pwg.Go(func() { h.prober.watch(i, c, stopProbes) })
	}
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		h.runFaults(ctx, start, stop)
	}()
	cfg.logf("chaos: clients and faults started")
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	close(stop)
	wg.Wait()
	<-faultsDone
	close(stopProbes)
	pwg.Wait()
	h.prober.expire()
	end := clock.now()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cfg.logf("chaos: clients stopped after %v; healing", clock.since(end)-clock.since(start))

	fin, err := h.finish(ctx)
	if err != nil {
		return nil, err
	}
	h.shutdown()

	in := h.checkInput(start, end, fin)
	in.WallStep = <-stepDone
	rep := buildReport(cfg, sched, in, Check(in))
	return rep, nil
}

// watchWallClock samples how far the wall clock has moved from the run's
// clock until stop closes, and returns the largest move either way.
func watchWallClock(clock *runClock, stop <-chan struct{}) time.Duration {
	var most time.Duration
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		d := clock.wallStep()
		if d < 0 {
			d = -d
		}
		most = max(most, d)
		select {
		case <-stop:
			return most
		case <-t.C:
		}
	}
}

// quietRedis silences go-redis's own log (dial failures while a node is
// down are expected); the history records every error.
var quietRedis sync.Once

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// anyKey is a random key of the run.
func (h *harness) anyKey(rng *rand.Rand) string { return h.keys[rng.IntN(len(h.keys))] }

// runFaults injects the schedule, relative to start, until stop closes.
// Faults still in force then are left to heal.
func (h *harness) runFaults(ctx context.Context, start int64, stop <-chan struct{}) {
	type step struct {
		at  time.Duration
		end bool
		ev  *FaultEvent
	}
	var steps []step
	for _, f := range h.sched.Faults {
		ev := &FaultEvent{Fault: f}
		steps = append(steps, step{at: f.At, ev: ev})
		if !f.instant() {
			steps = append(steps, step{at: f.End(), end: true, ev: ev})
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		switch {
		case a.end && !b.end:
			return -1
		case b.end && !a.end:
			return 1
		}
		return 0
	})
	for _, s := range steps {
		wait := time.Duration(start + int64(s.at) - h.clock.now())
		if wait > 0 {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		select {
		case <-stop:
			return
		default:
		}
		if s.end {
			h.endFault(s.ev, false)
			continue
		}
		h.startFault(s.ev)
	}
}

func (h *harness) startFault(ev *FaultEvent) {
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
	ev.Start = h.clock.now()
	undo, err := h.inject(ev.Fault)
	if err != nil {
		ev.Err = err.Error()
		h.cfg.logf("chaos: %s: %v", ev.Fault, err)
	}
	h.mu.Lock()
	if undo != nil {
		h.active[ev] = undo
	} else {
		ev.End = h.clock.now()
	}
	h.mu.Unlock()
	h.cfg.logf("chaos: %s", ev.Fault)
}

func (h *harness) endFault(ev *FaultEvent, healed bool) {
	h.mu.Lock()
	undo := h.active[ev]
	delete(h.active, ev)
	h.mu.Unlock()
	if undo == nil {
		return
	}
	if err := undo(); err != nil {
		ev.Err = strings.TrimSpace(ev.Err + " end: " + err.Error())
		h.cfg.logf("chaos: ending %s: %v", ev.Fault, err)
	}
	ev.End, ev.Healed = h.clock.now(), healed
}

// inject applies f and returns what undoes it (nil for skew, which stays).
func (h *harness) inject(f Fault) (func() error, error) {
	cl, cfg := h.cl, h.cfg
	region := func(r int) func(int) bool { return func(i int) bool { return cfg.regionOf(i) == r } }
	cutFn := func(keys [][2]int) (func() error, error) {
		if err := cl.cut(keys); err != nil {
			return nil, errors.Join(err, cl.uncut(keys))
		}
		return func() error { return cl.uncut(keys) }, nil
	}
	switch f.Kind {
	case FaultIsolate:
		in := region(f.Region)
		return cutFn(cl.linksBetween(in, func(i int) bool { return !in(i) }))
	case FaultOneWay:
		var keys [][2]int
		for k := range cl.proxies {
			if cfg.regionOf(k[0]) == f.From && cfg.regionOf(k[1]) == f.To {
				keys = append(keys, k)
			}
		}
		return cutFn(keys)
	case FaultPartial:
		return cutFn(cl.linksBetween(region(f.From), region(f.To)))
	case FaultSplit:
		in := func(i int) bool { return slices.Contains(f.Minority, cfg.regionOf(i)) }
		return cutFn(cl.linksBetween(in, func(i int) bool { return !in(i) }))
	case FaultLatency:
		streams := cl.streamsFrom(f.From, f.To)
		if f.Both {
			streams = append(streams, cl.streamsFrom(f.To, f.From)...)
		}
		name := fmt.Sprintf("spike-%d", h.clock.now())
		if err := cl.spike(name, streams, f.Latency); err != nil {
			cl.unspike(name, streams)
			return nil, err
		}
		return func() error { return cl.unspike(name, streams) }, nil
	case FaultKill:
		nd := cl.nodes[f.Node]
		if err := cl.stop(nd, syscall.SIGKILL, "kill"); err != nil {
			return nil, err
		}
		return func() error { return h.restart(nd, nd.offset()) }, nil
	case FaultPause:
		nd := cl.nodes[f.Node]
		if err := cl.signal(nd, syscall.SIGSTOP); err != nil {
			return nil, err
		}
		return func() error { return cl.signal(nd, syscall.SIGCONT) }, nil
	case FaultSkew:
		nd := cl.nodes[f.Node]
		if err := cl.stop(nd, syscall.SIGTERM, "term"); err != nil {
			return nil, err
		}
		return nil, h.restart(nd, f.Offset)
	case FaultSever:
		if cl.relays == nil || !cfg.shared(f.Node) {
			return nil, fmt.Errorf("node %d has no region to be severed from", f.Node+1)
		}
		cl.relays.sever(f.Node, true)
		return func() error { cl.relays.sever(f.Node, false); return nil }, nil
	case FaultFlush:
		c := newClient(cl.nodes[f.Node].addr, "", 5*time.Second)
		defer c.Close()
		return nil, c.FlushAll(context.Background()).Err()
	}
	return nil, fmt.Errorf("unknown fault kind %q", f.Kind)
}

// restart starts a new process of nd, again if it fails to start (its
// port may be briefly taken by another program).
func (h *harness) restart(nd *node, offset time.Duration) error {
	var err error
	for range 5 {
		if err = h.cl.start(nd, offset); err != nil {
			return err
		}
		if err = h.cl.waitReady(nd, 10*time.Second); err == nil || nd.running() {
			return err
		}
		h.cfg.logf("chaos: node %d failed to start (retrying): %v", nd.id, err)
		time.Sleep(500 * time.Millisecond)
	}
	return err
}

// peerState is one peer link as GEOCACHE REGIONS reports it.
type peerState struct {
	connected bool
	lag       int64
	fullSyncs int64
	skipped   int64
	standIns  int64
}

// relayCounts are a node's relays, from its own GEOCACHE REGIONS entry.
type relayCounts struct {
	sent, applied, missed int64
}

// regions reads GEOCACHE REGIONS of one node.
func regions(ctx context.Context, c *redis.Client) ([]peerState, error) {
	ps, _, err := regionsAndRelays(ctx, c)
	return ps, err
}

// regionsAndRelays reads GEOCACHE REGIONS of one node: its peers, and its
// relay counts (zero from a node of a version without them).
func regionsAndRelays(ctx context.Context, c *redis.Client) ([]peerState, relayCounts, error) {
	var rc relayCounts
	v, err := c.Do(ctx, "GEOCACHE", "REGIONS").Result()
	if err != nil {
		return nil, rc, err
	}
	arr, ok := v.([]any)
	if !ok || len(arr) < 1 {
		return nil, rc, fmt.Errorf("GEOCACHE REGIONS: unexpected reply %T", v)
	}
	var out []peerState
	for i, e := range arr {
		m := map[string]any{}
		switch x := e.(type) {
		case map[any]any:
			for k, v := range x {
				m[fmt.Sprint(k)] = v
			}
		case []any:
			for i := 0; i+1 < len(x); i += 2 {
				m[fmt.Sprint(x[i])] = x[i+1]
			}
		default:
			return nil, rc, fmt.Errorf("GEOCACHE REGIONS: unexpected entry %T", e)
		}
		if i == 0 { // the node itself
			rc.sent, _ = m["relays_sent"].(int64)
			rc.applied, _ = m["relays_applied"].(int64)
			rc.missed, _ = m["relays_missed"].(int64)
			continue
		}
		p := peerState{connected: m["state"] == "connected"}
		p.lag, _ = m["lag"].(int64)
		p.fullSyncs, _ = m["full_syncs"].(int64)
		p.skipped, _ = m["skipped"].(int64)
		p.standIns, _ = m["stand_ins"].(int64)
		out = append(out, p)
	}
	return out, rc, nil
}

// linksUp reports whether every node is connected to every peer with
// nothing left to send.
func (h *harness) linksUp(ctx context.Context, clients []*redis.Client) (bool, error) {
	for i, c := range clients {
		ps, err := regions(ctx, c)
		if err != nil {
			return false, fmt.Errorf("node %d: %w", i+1, err)
		}
		if len(ps) != len(clients)-1 {
			return false, nil
		}
		for _, p := range ps {
			if !p.connected || p.lag != 0 {
				return false, nil
			}
		}
	}
	return true, nil
}

// waitLinks waits until every link is up.
func (h *harness) waitLinks(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	clients := h.adminClients()
	defer closeAll(clients)
	var redirect []*redis.Client
	if h.cfg.SlotOwned {
		redirect = h.redirectClients()
		defer closeAll(redirect)
	}
	start := time.Now()
	var last error
	for time.Since(start) < timeout {
		ok, err := h.linksUp(ctx, clients)
		if ok {
			return time.Since(start), nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if last == nil {
		last = errors.New("some link is down")
	}
	return 0, fmt.Errorf("after %v: %w", timeout, last)
}

func (h *harness) adminClients() []*redis.Client {
	var cs []*redis.Client
	for _, nd := range h.cl.nodes {
		cs = append(cs, newClient(nd.addr, "", 10*time.Second))
	}
	return cs
}

func closeAll(cs []*redis.Client) {
	for _, c := range cs {
		c.Close()
	}
}

// KeyState is what a node holds for a key: its version (nil: nothing) and,
// for a live entry, its value.
type KeyState struct {
	Ver      *Version `json:"ver,omitempty"`
	Value    string   `json:"value,omitempty"`
	HasValue bool     `json:"has_value,omitempty"`
}

// final is the outcome of the final phase.
type final struct {
	HealAt      int64
	LinksAt     int64 // 0: the links never all came up
	ConvergedAt int64 // 0: never converged
	Timeline    []divergencePoint
	Keys        []string
	Dump        [][]KeyState // [node][key]
	DumpAt      []int64      // per node, when its dump completed
	// OwnerDump is, with slot-owned nodes, what each node holds of the keys
	// of its own slots ([node][key]; nil: not an owner), read without
	// forwarding, from the same rounds as Dump; OwnerDumpAt is when.
	OwnerDump   [][]*KeyState `json:",omitempty"`
	OwnerDumpAt int64         `json:",omitempty"`
	DumpErr     []string
	Evicted     []int64
	FullSyncs   []int64
	Skipped     []int64 // writes each node sent its peers as skips
	// StandIns are the writes each node sent its peers as stand-ins, and
	// Relays each node's relays sent, applied and missed.
	StandIns []int64    `json:",omitempty"`
	Relays   [][3]int64 `json:",omitempty"`
	// CounterKeys are the run's counter keys and Counters what every node
	// holds of them ([node][key]), from the same rounds as Dump.
	CounterKeys []string         `json:",omitempty"`
	Counters    [][]CounterState `json:",omitempty"`
	// HashKeys and Hashes: the same for the hash keys.
	HashKeys []string      `json:",omitempty"`
	Hashes   [][]HashState `json:",omitempty"`
}

type divergencePoint struct {
	T         int64 `json:"t"`
	Divergent int   `json:"divergent"`
	LinksUp   bool  `json:"links_up"`
}

// finish heals every fault, restarts every node that is down, waits until
// the nodes agree (or ConvergeTimeout) and dumps them.
func (h *harness) finish(ctx context.Context) (*final, error) {
	h.mu.Lock()
	var evs []*FaultEvent
	for ev := range h.active {
		evs = append(evs, ev)
	}
	h.mu.Unlock()
	for _, ev := range evs {
		h.endFault(ev, true)
	}
	for _, nd := range h.cl.nodes {
		if !nd.running() {
			if err := h.restart(nd, nd.offset()); err != nil {
				return nil, fmt.Errorf("chaos: restart node %d for the final phase: %w", nd.id, err)
			}
		}
	}
	f := &final{HealAt: h.clock.now(), CounterKeys: h.counters, HashKeys: h.hashes}
	keySet := map[string]bool{}
	for _, k := range h.keys {
		keySet[k] = true
	}
	for _, op := range h.prober.ops {
		keySet[op.Key] = true
	}
	for k := range keySet {
		f.Keys = append(f.Keys, k)
	}
	slices.Sort(f.Keys)

	clients := h.adminClients()
	defer closeAll(clients)
	var redirect []*redis.Client
	if h.cfg.SlotOwned {
		redirect = h.redirectClients()
		defer closeAll(redirect)
	}
	deadline := f.HealAt + int64(h.cfg.ConvergeTimeout)
	var agreedAt int64
	for {
		up, _ := h.linksUp(ctx, clients)
		if up && f.LinksAt == 0 {
			f.LinksAt = h.clock.now()
		}
		dump, at, errs := h.dump(ctx, clients, f.Keys)
		n := len(divergent(dump, f.Keys))
		counters, cerrs := h.dumpCounters(ctx, clients, f.CounterKeys)
		n += h.counterDivergent(counters)
		errs = append(errs, cerrs...)
		hashes, herrs := h.dumpHashes(ctx, clients, f.HashKeys)
		n += h.hashDivergent(hashes)
		errs = append(errs, herrs...)
		if redirect != nil {
			owned, oerrs := h.ownerDump(ctx, redirect, f.Keys)
			f.OwnerDump, f.OwnerDumpAt = owned, h.clock.now()
			n += len(h.ownerDivergent(owned, f.Keys, f.OwnerDumpAt))
			errs = append(errs, oerrs...)
		}
		t := h.clock.now()
		f.Timeline = append(f.Timeline, divergencePoint{T: t, Divergent: n, LinksUp: up})
		f.Dump, f.DumpAt, f.DumpErr, f.Counters, f.Hashes = dump, at, errs, counters, hashes
		if n == 0 && up && len(errs) == 0 {
			if agreedAt == 0 {
				agreedAt = t
			} else if t-agreedAt >= int64(time.Second) {
				f.ConvergedAt = agreedAt
				break // quiet and in agreement for a second: quiescent
			}
		} else {
			agreedAt = 0
		}
		if t > deadline {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	for _, c := range clients {
		ev, fs, sk, si := int64(-1), int64(0), int64(0), int64(0)
		var rc relayCounts
		if s, err := c.Info(ctx, "stats").Result(); err == nil {
			for line := range strings.SplitSeq(s, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "evicted_keys:"); ok {
					ev, _ = strconv.ParseInt(v, 10, 64)
				}
			}
		}
		if ps, r, err := regionsAndRelays(ctx, c); err == nil {
			for _, p := range ps {
				fs += p.fullSyncs
				sk += p.skipped
				si += p.standIns
			}
			rc = r
		}
		f.Evicted = append(f.Evicted, ev)
		f.FullSyncs = append(f.FullSyncs, fs)
		f.Skipped = append(f.Skipped, sk)
		f.StandIns = append(f.StandIns, si)
		f.Relays = append(f.Relays, [3]int64{rc.sent, rc.applied, rc.missed})
	}
	return f, nil
}

// dump reads every key's version and value on every node.
func (h *harness) dump(ctx context.Context, clients []*redis.Client, keys []string) ([][]KeyState, []int64, []string) {
	out := make([][]KeyState, len(clients))
	at := make([]int64, len(clients))
	var errs []string
	for i, c := range clients {
		out[i] = make([]KeyState, len(keys))
		vers, gets := readKeys(ctx, c, keys)
		at[i] = h.clock.now()
		for k := range keys {
			v, err := parseVersion(vers[k].Result())
			if err != nil {
				errs = append(errs, fmt.Sprintf("node %d: %s: %v", i+1, keys[k], err))
				break
			}
			out[i][k] = keyState(v, gets[k])
		}
	}
	return out, at, errs
}

// readKeys reads every key's GEOCACHE VERSION and GET on c, in one
// pipeline.
func readKeys(ctx context.Context, c *redis.Client, keys []string) ([]*redis.Cmd, []*redis.StringCmd) {
	pipe := c.Pipeline()
	vers := make([]*redis.Cmd, len(keys))
	gets := make([]*redis.StringCmd, len(keys))
	for k, key := range keys {
		vers[k] = pipe.Do(ctx, "GEOCACHE", "VERSION", key)
		gets[k] = pipe.Get(ctx, key)
	}
	pipe.Exec(ctx)
	return vers, gets
}

// keyState is what a node holds of a key, from its version and its GET.
func keyState(v *Version, get *redis.StringCmd) KeyState {
	st := KeyState{Ver: v}
	if s, err := get.Result(); err == nil {
		st.Value, st.HasValue = unpadValue(s), true
	}
	if v != nil && v.Deleted {
		st.HasValue = false
	}
	return st
}

// divergent returns the indexes of the keys on which the nodes disagree: two
// live entries of different versions (or values), or a live entry older
// than another node's remembered delete.
func divergent(dump [][]KeyState, keys []string) []int {
	var out []int
	for k := range keys {
		if keyDivergence(dump, k) != "" {
			out = append(out, k)
		}
	}
	return out
}

// keyDivergence describes how the nodes disagree on key index k, or "".
func keyDivergence(dump [][]KeyState, k int) string {
	var live *KeyState
	var liveNode int
	var maxTomb *Version
	for n := range dump {
		st := &dump[n][k]
		if st.Ver == nil {
			continue
		}
		if st.Ver.Deleted {
			if maxTomb == nil || st.Ver.Compare(*maxTomb) > 0 {
				maxTomb = st.Ver
			}
			continue
		}
		if live == nil {
			live, liveNode = st, n
			continue
		}
		if st.Ver.Compare(*live.Ver) != 0 {
			return fmt.Sprintf("node %d holds %s, node %d holds %s", liveNode+1, live.Ver, n+1, st.Ver)
		}
		if st.HasValue && live.HasValue && st.Value != live.Value {
			return fmt.Sprintf("nodes %d and %d hold version %s with different values %q and %q", liveNode+1, n+1, st.Ver, live.Value, st.Value)
		}
	}
	if maxTomb != nil {
		for n := range dump {
			st := &dump[n][k]
			if st.Ver != nil && !st.Ver.Deleted && st.Ver.Compare(*maxTomb) < 0 {
				return fmt.Sprintf("node %d holds %s, older than the delete %s another node remembers", n+1, st.Ver, maxTomb)
			}
		}
	}
	return ""
}

// shutdown stops every node with SIGTERM, recording its exit status.
func (h *harness) shutdown() {
	var wg sync.WaitGroup
	for _, nd := range h.cl.nodes {
		if nd.running() {
			wg.Go(func() {
				if err := h.cl.stop(nd, syscall.SIGTERM, "final"); err != nil {
					h.cfg.logf("chaos: %v", err)
				}
			})
		}
	}
	wg.Wait()
}
