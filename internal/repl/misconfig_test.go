package repl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
)

// Tests of how a replicator reports a replication setup that cannot work:
// each runs a few replicators on the in-memory network inside a synctest
// bubble, so minutes of retries cost no real time.

// logBuffer collects JSON log records; it is safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// records returns the records whose msg is msg and level is level ("" for
// any level).
func (b *logBuffer) records(msg, level string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.b.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg && (level == "" || rec["level"] == level) {
			out = append(out, rec)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testNode struct {
	r    *Replicator
	st   *store.Store
	logs *logBuffer
}

// startNode starts a replicator named name on mem (listening there unless
// noListen), with cfg's fields filled in; Close runs at the end of the
// test (inside the bubble, before it ends).
func startNode(t *testing.T, mem *testkit.Network, name string, cfg Config, noListen bool) *testNode {
	t.Helper()
	return startTestNode(t, mem, name, cfg, !noListen).testNode
}

func (n *testNode) link(t *testing.T, addr string) LinkStats {
	t.Helper()
	for _, l := range n.r.Stats().Links {
		if l.Addr == addr {
			return l
		}
	}
	t.Fatalf("no link to %s", addr)
	return LinkStats{}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A peer that is unreachable for minutes, retried every few milliseconds,
// gets one warning per WarnInterval, not one per attempt; the link
// coming up is reported once.
func TestLinkWarningsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{
			NodeID: 1, Peers: []string{"b"}, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 10 * time.Millisecond,
		}, false)
		time.Sleep(150 * time.Second) // b never listens: thousands of attempts
		synctest.Wait()

		l := a.link(t, "b")
		attempts := l.Failures[ReasonUnreachable]
		warns := a.logs.records("replication link down", "WARN")
		// One at the first failure, then one per minute: at 0, 60 and 120 s.
		if attempts < 1000 || len(warns) < 2 || len(warns) > 3 {
			t.Fatalf("%d attempts logged %d warnings; want at least 1000 attempts and 2 or 3 warnings", attempts, len(warns))
		}
		if w := warns[0]; w["peer"] != "b" || w["reason"] != "unreachable" || !strings.Contains(fmt.Sprint(w["err"]), "refused") {
			t.Errorf("warning %v lacks the peer and the reason", w)
		}
		if n, _ := warns[1]["suppressed"].(float64); n < 500 {
			t.Errorf("second warning counts %v suppressed attempts; want the attempts since the first", warns[1]["suppressed"])
		}
		if l.EverConnected || l.Reason != ReasonUnreachable || l.LastError == "" || l.LastErrorAt.IsZero() || l.Since.IsZero() {
			t.Errorf("link stats of a peer never reached: %+v", l)
		}

		startNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"}}, false)
		for !a.link(t, "b").Connected {
			time.Sleep(10 * time.Millisecond)
		}
		l = a.link(t, "b")
		if l.LastError != "" || l.Reason != ReasonNone || !l.EverConnected {
			t.Errorf("a connected link still shows an error: %+v", l)
		}
		if got := len(a.logs.records("replication link recovered", "INFO")); got != 1 {
			t.Errorf("%d \"recovered\" lines, want 1", got)
		}
	})
}

// Nodes of different clusters refuse each other, and both say so at WARN
// with the peer and the reason; the dialing node does not wait for that
// peer to be synced.
func TestClusterMismatchIsLoud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		b := startNode(t, mem, "b", Config{NodeID: 2, Cluster: "green"}, false)
		a := startNode(t, mem, "a", Config{NodeID: 1, Cluster: "blue", Peers: []string{"b"}}, false)
		time.Sleep(5 * time.Second) // a dozen attempts
		synctest.Wait()

		warns := a.logs.records("replication link down", "WARN")
		if len(warns) != 1 || warns[0]["reason"] != "cluster mismatch" || !strings.Contains(fmt.Sprint(warns[0]["err"]), `"blue"`) {
			t.Errorf("dialing side: warnings %v; want one with reason cluster mismatch", warns)
		}
		if strings.Contains(fmt.Sprint(warns), "green") {
			t.Errorf("dialing side: the refusal tells the peer's cluster: %v", warns)
		}
		if n := a.link(t, "b").Failures[ReasonCluster]; n < 3 {
			t.Errorf("%d attempts in 5 s", n)
		}
		refusals := b.logs.records("replication peer refused", "WARN")
		if len(refusals) != 1 || refusals[0]["reason"] != "cluster mismatch" || refusals[0]["node"] != "a" {
			t.Errorf("refusing side: warnings %v; want one naming node a", refusals)
		}
		if l := a.link(t, "b"); l.Reason != ReasonCluster || !strings.Contains(l.LastError, "cluster") {
			t.Errorf("link stats %+v", l)
		}
		if !isClosed(a.r.Synced()) {
			t.Error("a waits to be synced by a peer that refuses it")
		}
		if isClosed(a.r.IDConflict()) || isClosed(b.r.IDConflict()) {
			t.Error("a cluster mismatch reported as an id conflict")
		}
	})
}

// Two nodes with one id refuse each other; both report an id conflict
// (channel, stats, an ERROR line).
func TestDuplicateNodeID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 7, Peers: []string{"b"}}, false)
		b := startNode(t, mem, "b", Config{NodeID: 7}, false)
		<-a.r.IDConflict()
		<-b.r.IDConflict()
		synctest.Wait()
		if st := a.r.Stats(); st.IDConflicts == 0 || !strings.Contains(st.IDConflict, "duplicate node id 7") {
			t.Errorf("dialing side stats: %d, %q", st.IDConflicts, st.IDConflict)
		}
		if st := b.r.Stats(); st.IDConflicts == 0 || !strings.Contains(st.IDConflict, "duplicate node id 7") {
			t.Errorf("refusing side stats: %d, %q", st.IDConflicts, st.IDConflict)
		}
		if got := a.logs.records("replication link down", "ERROR"); len(got) != 1 || got[0]["reason"] != "duplicate node id" {
			t.Errorf("dialing side errors: %v", got)
		}
		if got := b.logs.records("replication peer refused", "ERROR"); len(got) != 1 || got[0]["reason"] != "duplicate node id" {
			t.Errorf("refusing side errors: %v", got)
		}
	})
}

// A node whose peers include its own address is told so, and it is not
// mistaken for a duplicate id.
func TestSelfDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"a"}}, false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if l := a.link(t, "a"); l.Reason != ReasonSelf {
			t.Errorf("link to itself: %+v", l)
		}
		if isClosed(a.r.IDConflict()) {
			t.Error("dialing itself reported as an id conflict")
		}
		if got := a.logs.records("replication link down", "ERROR"); len(got) != 1 {
			t.Errorf("%d errors, want 1", len(got))
		}
	})
}

// A restarted node is synced only once its peer's first full sync has
// arrived: at that moment it holds the peer's data, even when the data
// comes well after the handshake.
func TestSyncedAfterFirstFullSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		b := startNode(t, mem, "b", Config{NodeID: 2, Peers: []string{"a"}, ReconnectMax: time.Second}, false)
		for i := range 100 {
			op := store.Op{Kind: store.KindSet, Key: fmt.Sprint("k", i), Value: []byte("v"),
				Version: store.Version{HLC: hlc.Timestamp(uint64(time.Now().UnixMilli())<<16 + uint64(i)), Origin: 2}}
			b.st.Apply(op)
			b.r.Append(op)
		}
		// b's stream to a is slow: its snapshot arrives long after a's own
		// link to b has shaken hands.
		mem.SetLatency("b", "a", 3*time.Second)
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b"}}, false)
		for !a.link(t, "b").Connected {
			time.Sleep(10 * time.Millisecond)
		}
		if isClosed(a.r.Synced()) {
			t.Fatal("synced as soon as the link to b is up, before b's data arrived")
		}
		<-a.r.Synced()
		if got := a.st.Stats().Entries; got != 100 {
			t.Errorf("synced holding %d of b's 100 entries", got)
		}
		if len(a.logs.records("first sync with the peers complete", "INFO")) != 1 {
			t.Error("no log line for the first sync")
		}
	})
}

// A peer that is reached but never streams to this node (it does not list
// it) is given up on after SyncTimeout, with a warning; a peer that is
// down at start is not waited for.
func TestSyncedGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		startNode(t, mem, "b", Config{NodeID: 2}, false)
		start := time.Now()
		a := startNode(t, mem, "a", Config{NodeID: 1, Peers: []string{"b", "c"}, SyncTimeout: 30 * time.Second}, false)
		<-a.r.Synced()
		if waited := time.Since(start); waited < 30*time.Second {
			t.Errorf("synced after %v, before SyncTimeout, without b's sync", waited)
		}
		got := a.logs.records("first sync from peer not complete: reporting synced without it", "WARN")
		if len(got) != 1 || got[0]["peer"] != "b" {
			t.Errorf("warnings %v; want one for b (c was down at start)", got)
		}
	})
}

// A node without peers is synced at once and keeps no replication log.
func TestNoPeersNoLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Log: LogConfig{MaxBytes: 64 << 20}}, false)
		if !isClosed(a.r.Synced()) {
			t.Error("a node without peers is not synced")
		}
		for i := range 1000 {
			a.r.Append(store.Op{Kind: store.KindSet, Key: fmt.Sprint("k", i), Value: make([]byte, 1000)})
		}
		if st := a.r.Stats().Log; st.Records > 1 || st.Next != 1001 {
			t.Errorf("log of a node without peers: %+v; want at most 1 record, next 1001", st)
		}
	})
}

// Refusals are rate-limited per remote host, in a table that stays
// bounded however many hosts knock.
func TestRefusalTableBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startNode(t, mem, "a", Config{NodeID: 1, Cluster: "blue"}, false)
		const hosts = maxRefusalKeys + 50
		var knockers []*testNode
		for i := range hosts {
			knockers = append(knockers, startNode(t, mem, fmt.Sprint("h", i), Config{
				NodeID: uint32(i + 2), Cluster: "green", Peers: []string{"a"}, ReconnectMin: time.Second, ReconnectMax: time.Second,
			}, true))
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		a.r.mu.Lock()
		n := len(a.r.refusals)
		a.r.mu.Unlock()
		if n > maxRefusalKeys {
			t.Errorf("%d rate-limit entries, bound %d", n, maxRefusalKeys)
		}
		refused := 0
		for _, k := range knockers {
			if k.link(t, "a").Failures[ReasonCluster] > 0 {
				refused++
			}
		}
		if refused != hosts {
			t.Errorf("%d of %d hosts refused", refused, hosts)
		}
	})
}
