package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// announcement is what a member's gossip says of it.
type announcement struct {
	ID       uint32 `json:"id"`
	Name     string `json:"name"`
	Region   string `json:"region"`
	Addr     string `json:"resp,omitempty"`
	ReplAddr string `json:"repl,omitempty"`
	// State is the member's state by name, omitted when serving (the
	// announcement of nodes from before states existed).
	State string `json:"state,omitempty"`
}

func announce(region string, mb Member) announcement {
	a := announcement{ID: mb.ID, Name: mb.Name, Region: region, Addr: mb.Addr, ReplAddr: mb.ReplAddr}
	if mb.State != Serving {
		a.State = mb.State.String()
	}
	return a
}

// member returns the member announced, and false for an unknown state.
func (a announcement) member() (Member, bool) {
	mb := Member{ID: a.ID, Name: a.Name, Addr: a.Addr, ReplAddr: a.ReplAddr}
	if a.State != "" {
		st, ok := ParseMemberState(a.State)
		if !ok || st == Serving {
			return mb, false
		}
		mb.State = st
	}
	return mb, true
}

// maxMetaBytes bounds a member's announcement (memberlist's own bound is
// 512 bytes).
const maxMetaBytes = memberlist.MetaMaxSize

// MembershipConfig configures a Membership. Zero values are defaults.
type MembershipConfig struct {
	// Cluster names the cluster. Gossip packets are labelled with it:
	// members of other clusters are not heard. Default "geocache".
	Cluster string
	// Self is this node (ID and Name required; its State is announced
	// until SetState changes it); Region is its region (required): gossip
	// joins the nodes of one region.
	Self   Member
	Region string
	// BindAddr is the host:port gossip listens on (UDP and TCP). Required;
	// port 0 picks a free one (see Addr).
	BindAddr string
	// AdvertiseAddr is the host:port other members reach this node's
	// gossip at. Default BindAddr (which then must not be a wildcard).
	AdvertiseAddr string
	// Join lists gossip addresses of members to join through; any live
	// one is enough. Empty starts a region of one that others join.
	Join []string
	// SecretKey, if set (16, 24 or 32 bytes), encrypts and authenticates
	// every gossip message (AES-GCM); members without it are not heard.
	SecretKey []byte
	// ProbeInterval is how often a member probes another; a dead member
	// is declared within a few intervals. Default 200 ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack before asking
	// others to probe indirectly. Default 100 ms; raise it where round
	// trips inside the region are longer.
	ProbeTimeout time.Duration
	// OnChange is called with the live members (this node included,
	// sorted by name) after every change of the membership, one call at a
	// time from one goroutine; a burst of changes may be reported once.
	OnChange func([]Member)
	// Logger receives structured logs. nil discards them.
	Logger *slog.Logger

	// tune, if set, adjusts memberlist's configuration before it starts
	// (tests: a partitionable transport, shorter timings).
	tune func(*memberlist.Config)
}

// Membership is this node's view of its region's live members, kept by
// gossip (hashicorp/memberlist's SWIM). Members of another region that
// reach it are ignored with a warning. Close stops it.
type Membership struct {
	cfg  MembershipConfig
	list *memberlist.Memberlist
	addr string // the advertised gossip address

	closeMu  sync.Mutex // guards closed; held by Leave, which memberlist refuses after Shutdown
	closed   bool
	stopping atomic.Bool // Leave or Close began (slogWriter)

	changed chan struct{} // wakes the notifier
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup

	// mu guards members, ignored, cfg.Self.State and self, this node's
	// encoded announcement (SetState holds closeMu, which orders its
	// calls). It is never held across a call into memberlist.
	mu      sync.Mutex
	self    []byte
	members map[string]Member // live, by name
	ignored map[string]bool   // names of members of other regions warned about
	// failed holds, by name, the gossip addresses of members declared
	// dead (not those that announced they were leaving), which reconnect
	// keeps trying.
	failed map[string]failedMember

	rejoins atomic.Uint64 // failed members that came back, by any path
	merges  atomic.Uint64 // merges with another region's gossip refused (merger)
}

// failedMember is a member declared dead, as reconnect knows it.
type failedMember struct {
	name, addr string
	since      time.Time
}

// Reconnecting to members declared dead: memberlist forgets a dead member
// once it has gossiped to it for GossipToTheDeadTime, so two sides of a
// partition that outlasts that, each having declared the other dead, would
// stay two regions for good (each owning every slot) after the network
// heals. Every reconnectEvery probe intervals this node joins each failed
// member's address again, as Serf does over memberlist, for up to
// reconnectFor; at most maxFailed are remembered (the oldest go first).
const (
	reconnectEvery = 5
	reconnectFor   = 24 * time.Hour
	maxFailed      = 256
)

// DefaultProbeInterval is MembershipConfig.ProbeInterval's default.
const DefaultProbeInterval = 200 * time.Millisecond

// Errors of StartMembership and SetState.
var (
	ErrInvalidMembership = errors.New("cluster: invalid membership config")
	ErrLeaving           = errors.New("cluster: this node is leaving its region")
	ErrClosed            = errors.New("cluster: membership closed")
)

// StartMembership starts gossiping and, if cfg.Join names members, joins
// them (it fails if none of them answers).
func StartMembership(cfg MembershipConfig) (*Membership, error) {
	if cfg.Cluster == "" {
		cfg.Cluster = "geocache"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeTimeout == 0 {
		cfg.ProbeTimeout = 100 * time.Millisecond
	}
	switch {
	case cfg.Self.ID == 0 || cfg.Self.Name == "" || cfg.Region == "":
		return nil, fmt.Errorf("%w: this node's id, name and region are required", ErrInvalidMembership)
	case cfg.BindAddr == "":
		return nil, fmt.Errorf("%w: a gossip address is required", ErrInvalidMembership)
	case cfg.ProbeInterval < 0 || cfg.ProbeTimeout < 0 || cfg.ProbeTimeout >= cfg.ProbeInterval:
		return nil, fmt.Errorf("%w: the probe timeout must be positive and shorter than the probe interval", ErrInvalidMembership)
	case len(cfg.SecretKey) != 0 && len(cfg.SecretKey) != 16 && len(cfg.SecretKey) != 24 && len(cfg.SecretKey) != 32:
		return nil, fmt.Errorf("%w: the gossip key must be 16, 24 or 32 bytes, not %d", ErrInvalidMembership, len(cfg.SecretKey))
	}
	if cfg.Self.State > Leaving {
		return nil, fmt.Errorf("%w: this node's state %v", ErrInvalidMembership, cfg.Self.State)
	}
	self, err := encodeAnnouncement(cfg.Region, cfg.Self)
	if err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:     cfg,
		self:    self,
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
		members: map[string]Member{},
		ignored: map[string]bool{},
		failed:  map[string]failedMember{},
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Self.Name
	mc.Label = "geocache/" + cfg.Cluster
	// Detection in about a second, not memberlist's LAN default of several:
	// a node's slots move to their other owners as soon as it is declared
	// dead. Suspicion lasts SuspicionMult × ProbeInterval (× log10 of the
	// size past 10 nodes), at most twice that without confirmations.
	mc.ProbeInterval, mc.ProbeTimeout = cfg.ProbeInterval, cfg.ProbeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = 3, 2
	mc.GossipInterval = cfg.ProbeInterval / 2
	mc.PushPullInterval = 15 * time.Second
	mc.TCPTimeout = max(time.Second, 5*cfg.ProbeTimeout)
	mc.DeadNodeReclaimTime = 5 * time.Second // a restarted node may come back at a new address
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Merge = (*merger)(m)
	mc.Logger = log.New(slogWriter{l: cfg.Logger, stopping: &m.stopping}, "", 0)
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip address: %w", ErrInvalidMembership, err)
	}
	mc.BindAddr, mc.BindPort = host, port
	if cfg.AdvertiseAddr != "" {
		if host, port, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("%w: gossip advertise address: %w", ErrInvalidMembership, err)
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip: %w", err)
	}
	m.list = list
	// Read once: memberlist rewrites its local node on every UpdateNode
	// without a lock readers could take.
	m.addr = list.LocalNode().Address()
	m.wg.Go(m.notify)
	m.wg.Go(m.reconnect)
	if len(cfg.Join) > 0 {
		if _, err := list.Join(cfg.Join); err != nil {
			m.Close()
			return nil, fmt.Errorf("cluster: joining %s: %w", strings.Join(cfg.Join, ","), err)
		}
	}
	cfg.Logger.Info("gossip started", "addr", cfg.BindAddr, "joined", len(cfg.Join) > 0, "members", list.NumMembers())
	return m, nil
}

// encodeAnnouncement returns what gossip says of mb, or an error if it does
// not fit memberlist's bound.
func encodeAnnouncement(region string, mb Member) ([]byte, error) {
	self, err := json.Marshal(announce(region, mb))
	if err != nil {
		return nil, err
	}
	if len(self) > maxMetaBytes {
		return nil, fmt.Errorf("%w: this node's announcement is %d bytes, over %d (shorter names or addresses)", ErrInvalidMembership, len(self), maxMetaBytes)
	}
	return self, nil
}

// SetState announces this node's new state to the region and waits up to
// timeout for the announcement to be sent to the other members (they then
// spread it among themselves); OnChange reports the change here at once.
// Leaving is final: after it, SetState returns ErrLeaving for any other
// state. It returns an error if the announcement could not be sent in time
// (the others learn it by gossip later) or after Close.
func (m *Membership) SetState(s MemberState, timeout time.Duration) error {
	if s > Leaving {
		return fmt.Errorf("%w: state %v", ErrInvalidMembership, s)
	}
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return ErrClosed
	}
	self := m.selfMember()
	if self.State == s {
		return nil
	}
	if self.State == Leaving {
		return ErrLeaving
	}
	if err := m.setSelfState(s); err != nil {
		return err
	}
	m.cfg.Logger.Info("region: this node is "+s.String(), "node", self.Name)
	m.wake()
	return m.list.UpdateNode(timeout)
}

// State returns the state this node announces.
func (m *Membership) State() MemberState { return m.selfMember().State }

func (m *Membership) selfMember() Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.Self
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

// Failed returns how many members declared dead this node keeps trying to
// reach (a partition of the region, or members that never came back), and
// how many came back (a healed partition or a restart, whichever side
// re-joined).
func (m *Membership) Failed() (failed int, rejoins uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.failed), m.rejoins.Load()
}

// MergesRefused returns how many times this node refused to merge its
// gossip with a pool holding a node of another region (a --join, or a
// re-join of a failed member's address, that reached another region).
func (m *Membership) MergesRefused() uint64 { return m.merges.Load() }

// Addr returns the host:port other members reach this node's gossip at.
func (m *Membership) Addr() string { return m.addr }

// Members returns the live members of this node's region, this node
// included, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sortedLocked()
}

func (m *Membership) sortedLocked() []Member {
	out := make([]Member, 0, len(m.members)+1)
	out = append(out, m.cfg.Self)
	for _, mb := range m.members {
		out = append(out, mb)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Leave announces that this node is leaving, so that the others remove it
// at once instead of detecting a failure (and do not try to reach it
// again): it announces the Leaving state first unless SetState did, then
// leaves the gossip, waiting up to timeout for each to spread. After Close
// it does nothing.
func (m *Membership) Leave(timeout time.Duration) error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.stopping.Store(true)
	// Say Leaving first, if not yet said (LeaveRegion does; a Close that
	// did not hand over does not): memberlist does not tell the others a
	// member that left from one that failed, and they keep trying to
	// reach a failed one (reconnect).
	if m.selfMember().State != Leaving && m.setSelfState(Leaving) == nil {
		m.list.UpdateNode(timeout) // best effort: the leave itself follows
	}
	return m.list.Leave(timeout)
}

// setSelfState makes s the state this node announces (sent with the next
// gossip of its meta: UpdateNode). closeMu is held.
func (m *Membership) setSelfState(s MemberState) error {
	self := m.selfMember()
	self.State = s
	enc, err := encodeAnnouncement(m.cfg.Region, self)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.self, m.cfg.Self.State = enc, s
	m.mu.Unlock()
	return nil
}

// Close stops gossiping (without announcing a leave: see Leave) and the
// notifier goroutine. It is idempotent.
func (m *Membership) Close() error {
	m.closeMu.Lock()
	if m.closed {
		m.closeMu.Unlock()
		return nil
	}
	m.closed = true
	m.stopping.Store(true)
	m.closeMu.Unlock()
	close(m.done)
	m.wg.Wait() // reconnect's join in flight ends within memberlist's TCP timeout
	return m.list.Shutdown()
}

// reconnect joins the failed members' addresses again, one at a time,
// until they are members again, they left, or reconnectFor has passed.
func (m *Membership) reconnect() {
	tick := time.NewTicker(reconnectEvery * m.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-m.done:
			return
		}
		for _, f := range m.failedMembers() {
			select {
			case <-m.done:
				return
			default:
			}
			if m.stopping.Load() {
				return
			}
			// A failed join is logged by memberlist at debug level: a
			// member that stays down costs one dial per tick, quietly. A
			// join that reached something is a rejoin only if the member
			// is back (what answers there may be another node: update and
			// ignore then stopped trying the address).
			if n, err := m.list.Join([]string{f.addr}); err == nil && n > 0 {
				m.mu.Lock()
				_, back := m.members[f.name]
				m.mu.Unlock()
				if back {
					m.cfg.Logger.Info("region member reached again at its gossip address", "node", f.name, "addr", f.addr, "down_for", time.Since(f.since).Round(time.Millisecond))
				}
			}
		}
	}
}

// failedMembers returns the failed members to try now, oldest first,
// forgetting those tried for reconnectFor.
func (m *Membership) failedMembers() []failedMember {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]failedMember, 0, len(m.failed))
	for name, f := range m.failed {
		if time.Since(f.since) > reconnectFor {
			delete(m.failed, name)
			m.cfg.Logger.Info("region member given up on: unreachable since it was declared dead", "node", name, "addr", f.addr, "since", f.since)
			continue
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b failedMember) int { return a.since.Compare(b.since) })
	return out
}

// notify calls OnChange after changes, one call at a time.
func (m *Membership) notify() {
	for {
		select {
		case <-m.changed:
		case <-m.done:
			return
		}
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(m.Members())
		}
	}
}

func (m *Membership) wake() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// update records a member's (new) announcement, or drops one that is not
// of this region or cannot be read.
func (m *Membership) update(n *memberlist.Node) {
	if n.Name == m.cfg.Self.Name {
		return
	}
	var a announcement
	err := json.Unmarshal(n.Meta, &a)
	mb, known := a.member()
	switch {
	case err != nil || !known || mb.ID == 0 || mb.Name != n.Name:
		m.ignore(n, "unreadable announcement", "err", err)
		return
	case a.Region != m.cfg.Region:
		m.ignore(n, "member of another region (gossip joins the nodes of one region; regions link by --peers)", "region", a.Region)
		return
	case mb.ID == m.cfg.Self.ID:
		m.ignore(n, "member with this node's id", "id", mb.ID)
		return
	}
	m.mu.Lock()
	old, had := m.members[n.Name]
	m.members[n.Name] = mb
	if m.forgetFailedLocked(n) { // back, or a node restarted under a new name
		m.rejoins.Add(1)
	}
	m.mu.Unlock()
	if !had || old != mb {
		m.cfg.Logger.Info("region member up", "node", mb.Name, "id", mb.ID, "addr", mb.Addr, "repl_addr", mb.ReplAddr, "state", mb.State.String())
		m.wake()
	}
}

// forgetFailedLocked stops trying the failed members named n or at n's
// address: n holds it now. It reports whether n itself was one (a failed
// member back, by this node's reconnect or any other path). m.mu is held.
func (m *Membership) forgetFailedLocked(n *memberlist.Node) (back bool) {
	for name, f := range m.failed {
		if name == n.Name || f.addr == n.Address() {
			back = back || name == n.Name
			delete(m.failed, name)
		}
	}
	return back
}

func (m *Membership) ignore(n *memberlist.Node, why string, args ...any) {
	name := n.Name
	m.mu.Lock()
	_, had := m.members[name]
	delete(m.members, name)
	m.forgetFailedLocked(n) // not a member of this region at that address any more
	warn := !m.ignored[name] && len(m.ignored) < 1024
	if warn {
		m.ignored[name] = true
	}
	m.mu.Unlock()
	if warn {
		m.cfg.Logger.Warn("gossip member ignored: "+why, append([]any{"node", name}, args...)...)
	}
	if had {
		m.wake()
	}
}

func (m *Membership) remove(n *memberlist.Node) {
	m.mu.Lock()
	mb, had := m.members[n.Name]
	delete(m.members, n.Name)
	delete(m.failed, n.Name)
	// memberlist does not say here whether the member failed or left
	// (its Node.State is not kept): a member that leaves announces
	// Leaving first, so any other is taken as failed.
	if had && mb.State != Leaving {
		if len(m.failed) >= maxFailed {
			oldest := ""
			for name, f := range m.failed {
				if oldest == "" || f.since.Before(m.failed[oldest].since) {
					oldest = name
				}
			}
			delete(m.failed, oldest)
		}
		m.failed[n.Name] = failedMember{name: n.Name, addr: n.Address(), since: time.Now()}
	}
	m.mu.Unlock()
	if had {
		m.cfg.Logger.Info("region member down", "node", mb.Name, "id", mb.ID)
		m.wake()
	}
}

// delegate announces this node; it carries no user messages.
type delegate Membership

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.self) > limit {
		return nil
	}
	return d.self
}
func (d *delegate) NotifyMsg([]byte)                    {}
func (d *delegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *delegate) LocalState(bool) []byte              { return nil }
func (d *delegate) MergeRemoteState(buf []byte, _ bool) {}

// merger refuses to merge this node's gossip pool with a pool of another
// region: gossip joins the nodes of one region, and regions link by
// --peers. A --join that reaches only another region's nodes fails (a
// mistaken address is an error at start, not a warning), and a failed
// member's address that another region's node now answers at is not
// tried again. A pool that holds nodes of this region is this region's,
// whatever else it holds: merging with it is how a split region heals,
// and a stray node of another region there (a mistaken join of a node
// without this check) is ignored member by member (update).
type merger Membership

// NotifyMerge is memberlist's MergeDelegate, called on both sides of a
// join with the other side's nodes: a non-nil error cancels the merge.
func (g *merger) NotifyMerge(peers []*memberlist.Node) error {
	m := (*Membership)(g)
	var other []*memberlist.Node
	var region string
	for _, n := range peers {
		if n.Name == m.cfg.Self.Name {
			continue
		}
		var a announcement
		switch {
		case json.Unmarshal(n.Meta, &a) != nil:
			// Unreadable: ignored member by member (update).
		case a.Region == m.cfg.Region:
			return nil // a pool of this region
		default:
			if len(other) == 0 {
				region = a.Region
			}
			other = append(other, n)
		}
	}
	if len(other) == 0 {
		return nil
	}
	m.mu.Lock()
	for _, n := range other {
		m.forgetFailedLocked(n) // another region answers at that address now
	}
	m.mu.Unlock()
	m.merges.Add(1)
	return fmt.Errorf("%w: node %s (%s) is of region %q, this node's is %q: gossip joins the nodes of one region; regions link by --peers",
		errOtherRegion, other[0].Name, other[0].Address(), region, m.cfg.Region)
}

// errOtherRegion is the error of a merge refused with another region's
// gossip. memberlist reports it in a join's error as text only.
var errOtherRegion = errors.New("cluster: gossip of another region")

// events follows memberlist's view of the members.
type events Membership

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Membership)(e).update(n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Membership)(e).update(n) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Membership)(e).remove(n) }

// slogWriter turns memberlist's log lines ("[LEVEL] memberlist: ...")
// into structured records of the matching level.
//
// Once this node leaves or closes, memberlist's goroutines report the
// sends they could not make on the sockets it closed ("use of closed
// network connection") as errors: those are logged at debug level, so that
// a graceful stop logs no error.
type slogWriter struct {
	l        *slog.Logger
	stopping *atomic.Bool // set by Leave and Close
}

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.HasPrefix(line, "[ERR]"):
		level = slog.LevelError
	case strings.HasPrefix(line, "[WARN]"):
		level = slog.LevelWarn
	case strings.HasPrefix(line, "[INFO]"):
		level = slog.LevelInfo
	}
	if i := strings.Index(line, "] "); i >= 0 && strings.HasPrefix(line, "[") {
		line = line[i+2:]
	}
	if level > slog.LevelDebug && w.stopping != nil && w.stopping.Load() && strings.Contains(line, "use of closed network connection") {
		level = slog.LevelDebug
	}
	w.l.Log(context.Background(), level, line, "component", "gossip")
	return len(p), nil
}
