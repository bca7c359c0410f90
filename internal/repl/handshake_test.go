package repl

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// Handshake refusals, in both directions: a fake peer dialing the node, and
// the node dialing a fake peer's address. Each refusal is one Reject frame
// with a code saying why, then the connection closes; nothing is applied,
// streamed or learned.

// The node under test in these tests, named so that a leak of any of its
// names or ids into a refusal shows.
var secretCfg = Config{Cluster: "secret-cluster", Region: "secret-region", NodeName: "secret-node", NodeID: 4242}

func secretHello() *wire.Hello {
	h := fakeHello(fakeID)
	h.Cluster = secretCfg.Cluster
	return h
}

// helloWith returns secretHello's encoding changed by f; inc is the node's
// incarnation.
func helloWith(f func(h *wire.Hello, inc uint64)) func(inc uint64) []byte {
	return func(inc uint64) []byte {
		h := secretHello()
		f(h, inc)
		return h.Append(nil)
	}
}

func TestHandshakeRefusedInbound(t *testing.T) {
	cases := []struct {
		name     string
		first    func(inc uint64) []byte // the first bytes the fake peer sends
		code     wire.RejectCode
		msg      string // in the Reject's message
		conflict bool   // the node reports an id conflict
	}{
		{"protocol", helloWith(func(h *wire.Hello, _ uint64) { h.Proto = wire.MinProto - 1 }),
			wire.RejectProtocol, fmt.Sprintf("protocol %d", wire.MinProto-1), false},
		{"other cluster", helloWith(func(h *wire.Hello, _ uint64) { h.Cluster = "a-guess" }),
			wire.RejectCluster, `cluster "a-guess"`, false},
		{"node id 0", helloWith(func(h *wire.Hello, _ uint64) { h.NodeID = 0 }),
			wire.RejectBadFrame, "node id 0", false},
		{"duplicate node id", helloWith(func(h *wire.Hello, _ uint64) { h.NodeID = secretCfg.NodeID }),
			wire.RejectDuplicateNode, "duplicate node id 4242", true},
		{"self dial", helloWith(func(h *wire.Hello, inc uint64) { h.NodeID, h.Incarnation = secretCfg.NodeID, inc }),
			wire.RejectDuplicateNode, "dialed itself", false},
		{"incarnation 0", helloWith(func(h *wire.Hello, _ uint64) { h.Incarnation = 0 }),
			wire.RejectBadFrame, "incarnation 0", false},
		{"first frame a Ping", func(uint64) []byte { return (&wire.Ping{SentNanos: 1}).Append(nil) },
			wire.RejectBadFrame, "starts with a Hello", false},
		{"first frame an Ops", func(uint64) []byte {
			return (&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("k", "v", 1, fakeID)}}).Append(nil)
		}, wire.RejectBadFrame, "starts with a Hello", false},
		{"unknown frame type", func(uint64) []byte { return []byte{0, 0, 0, 1, 0xee} },
			wire.RejectBadFrame, "unknown frame type", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				a := startTestNode(t, mem, "a", secretCfg, true)
				inc := a.r.Stats().Incarnation

				p := dialFake(t, mem, "fake", "a")
				if _, err := p.c.Write(tc.first(inc)); err != nil {
					t.Fatal(err)
				}
				// The Reject is the first frame: the node says nothing of
				// itself (no Hello) to a peer it refuses.
				rej := recvAs[*wire.Reject](t, p)
				if rej.Code != tc.code || !strings.Contains(rej.Message, tc.msg) {
					t.Errorf("Reject %v %q; want %v containing %q", rej.Code, rej.Message, tc.code, tc.msg)
				}
				p.expectClosed()
				synctest.Wait()

				if tc.code == wire.RejectCluster || tc.conflict {
					// A wrong guess must not learn the right cluster, nor
					// which node it reached (a duplicate id is the id the
					// peer announced itself).
					secrets := []string{secretCfg.Cluster, secretCfg.NodeName, secretCfg.Region, fmt.Sprint(inc)}
					if !tc.conflict {
						secrets = append(secrets, "4242")
					}
					for _, secret := range secrets {
						if strings.Contains(rej.Message, secret) {
							t.Errorf("the refusal %q reveals %q", rej.Message, secret)
						}
					}
				}
				if got := isClosed(a.r.IDConflict()); got != tc.conflict {
					t.Errorf("id conflict reported: %v, want %v", got, tc.conflict)
				}
				if st := a.r.Stats(); len(st.Origins) != 0 || st.InboundConns != 0 {
					t.Errorf("after a refusal: origins %+v, %d inbound connections", st.Origins, st.InboundConns)
				}

				// The node still takes a peer that introduces itself properly.
				p2 := dialFake(t, mem, "fake", "a")
				h, r := p2.open(secretHello())
				if h.NodeID != secretCfg.NodeID || r.Origin != fakeID || r.NextSeq != 0 {
					t.Errorf("a good peer after the refusal: Hello %+v, Resume %+v", h, r)
				}
			})
		})
	}
}

func TestHandshakeRefusedOutbound(t *testing.T) {
	cases := []struct {
		name   string
		answer func(nodeHello *wire.Hello) wire.Frame // the fake peer's first frame
		code   wire.RejectCode                        // of the node's Reject; 0: the node sends none
		reason Reason                                 // the link's
	}{
		{"protocol", func(*wire.Hello) wire.Frame {
			h := secretHello()
			h.Proto = wire.MinProto - 1
			return h
		}, wire.RejectProtocol, ReasonProtocol},
		{"answer above the version announced", func(*wire.Hello) wire.Frame {
			h := secretHello()
			h.Proto = wire.Proto + 1
			return h
		}, wire.RejectProtocol, ReasonProtocol},
		{"other cluster", func(*wire.Hello) wire.Frame {
			h := secretHello()
			h.Cluster = "a-guess"
			return h
		}, wire.RejectCluster, ReasonCluster},
		{"node id 0", func(*wire.Hello) wire.Frame {
			h := secretHello()
			h.NodeID = 0
			return h
		}, wire.RejectBadFrame, ReasonRefused},
		{"duplicate node id", func(*wire.Hello) wire.Frame {
			h := secretHello()
			h.NodeID = secretCfg.NodeID
			return h
		}, wire.RejectDuplicateNode, ReasonDuplicateNode},
		{"self dial", func(nh *wire.Hello) wire.Frame { return nh }, // the node hears itself
			wire.RejectDuplicateNode, ReasonSelf},
		{"incarnation 0", func(*wire.Hello) wire.Frame {
			h := secretHello()
			h.Incarnation = 0
			return h
		}, wire.RejectBadFrame, ReasonRefused},
		{"first frame a Resume", func(*wire.Hello) wire.Frame {
			return &wire.Resume{Origin: secretCfg.NodeID, NextSeq: 1}
		}, wire.RejectBadFrame, ReasonHandshake},
		{"peer refuses", func(*wire.Hello) wire.Frame {
			return &wire.Reject{Code: wire.RejectCluster, Message: "not ours"}
		}, 0, ReasonCluster},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				ln := listenFake(t, mem, "fake")
				cfg := secretCfg
				cfg.Peers = []string{"fake"}
				a := startTestNode(t, mem, "a", cfg, false)
				a.put(t, "k", "v")

				p := ln.accept()
				nh := recvAs[*wire.Hello](t, p)
				if nh.NodeID != secretCfg.NodeID || nh.Cluster != secretCfg.Cluster || nh.Incarnation != a.r.Stats().Incarnation {
					t.Fatalf("the node's Hello %+v", nh)
				}
				p.send(tc.answer(nh))
				if tc.code != 0 {
					rej := recvAs[*wire.Reject](t, p)
					if rej.Code != tc.code {
						t.Errorf("Reject %v %q, want %v", rej.Code, rej.Message, tc.code)
					}
				}
				p.expectClosed() // no Resume, no Ops, no snapshot
				synctest.Wait()

				l := a.link(t, "fake")
				if l.Connected || l.EverConnected || l.Reason != tc.reason || l.Failures[tc.reason] == 0 || l.LastError == "" {
					t.Errorf("link after the refusal: %+v; want reason %v", l, tc.reason)
				}
				if got, want := isClosed(a.r.IDConflict()), tc.reason == ReasonDuplicateNode; got != want {
					t.Errorf("id conflict reported: %v, want %v", got, want)
				}
				if l.Acked != 0 || l.FullSyncs != 0 {
					t.Errorf("the refused peer counts as synced: %+v", l)
				}
			})
		})
	}
}

// Nodes of protocol versions from wire.MinProto on link up, each speaking
// the older: a node answers a Hello of an older or newer version with the
// older of the two, and a node refused for the version it announced (by a
// node of an older version, during a rolling upgrade) dials again at once
// announcing wire.MinProto, and replicates.
func TestHandshakeOlderAndNewerProtocols(t *testing.T) {
	for _, proto := range []uint16{wire.MinProto, wire.Proto + 1} {
		t.Run(fmt.Sprintf("inbound %d", proto), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				mem := testkit.NewNetwork()
				defer mem.Close()
				startTestNode(t, mem, "a", secretCfg, true)
				p := dialFake(t, mem, "fake", "a")
				h := secretHello()
				h.Proto = proto
				nh, rs := p.open(h)
				if want := min(proto, wire.Proto); nh.Proto != want || rs.Origin != fakeID {
					t.Errorf("answer to a Hello of protocol %d: Hello of %d, Resume %+v; want %d", proto, nh.Proto, rs, want)
				}
			})
		})
	}
	t.Run("outbound to an older node", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			mem := testkit.NewNetwork()
			defer mem.Close()
			ln := listenFake(t, mem, "old")
			cfg := secretCfg
			cfg.Peers = []string{"old"}
			a := startTestNode(t, mem, "a", cfg, false)
			a.put(t, "k", "v")

			// An older node refuses the Hello of wire.Proto, as a node of
			// exactly one version did.
			p := ln.accept()
			if nh := recvAs[*wire.Hello](t, p); nh.Proto != wire.Proto {
				t.Fatalf("first Hello of protocol %d; want %d", nh.Proto, wire.Proto)
			}
			p.send(&wire.Reject{Code: wire.RejectProtocol, Message: fmt.Sprintf("protocol %d; this node speaks %d", wire.Proto, wire.MinProto)})
			p.expectClosed()

			q := ln.accept()
			nh := recvAs[*wire.Hello](t, q)
			if nh.Proto != wire.MinProto {
				t.Fatalf("Hello after the refusal of protocol %d; want %d", nh.Proto, wire.MinProto)
			}
			old := secretHello()
			old.Proto = wire.MinProto
			q.send(old)
			q.send(&wire.Resume{Origin: secretCfg.NodeID, NextSeq: 1, HLC: uint64(nowTS())})
			ops := dataAs[*wire.Ops](t, q)
			if len(ops.Ops) != 1 || ops.Ops[0].Key != "k" {
				t.Errorf("first Ops after linking at protocol %d: %+v", wire.MinProto, ops)
			}
			if l := a.link(t, "old"); !l.Connected || l.Failures[ReasonProtocol] != 0 {
				t.Errorf("link to the older node: %+v; want connected, no protocol failure counted", l)
			}
		})
	})
}

// A peer that refuses every version (a node older than wire.MinProto, or
// a newer one that speaks none of this node's) is dialed on the link's
// backoff like any other refusal: the retry announcing wire.MinProto adds
// one dial per attempt, no more.
func TestHandshakeProtocolRefusalsBackOff(t *testing.T) {
	dials := map[wire.RejectCode]int{}
	for _, code := range []wire.RejectCode{wire.RejectCluster, wire.RejectProtocol} {
		synctest.Test(t, func(t *testing.T) {
			mem := testkit.NewNetwork()
			defer mem.Close()
			ln, err := mem.Listen("refuser")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					dials[code]++
					p := &fakePeer{t: t, c: c, r: bufio.NewReader(c)}
					if _, err := p.recv(); err == nil {
						p.send(&wire.Reject{Code: code, Message: "refused by the test"})
					}
					c.Close()
				}
			}()
			cfg := secretCfg
			cfg.Peers = []string{"refuser"}
			a := startTestNode(t, mem, "a", cfg, false)
			time.Sleep(time.Minute)
			a.r.Close()
			ln.Close()
			<-done
		})
	}
	if dials[wire.RejectCluster] == 0 || dials[wire.RejectProtocol] > 2*dials[wire.RejectCluster]+2 {
		t.Errorf("dials in a minute: %d refused for the cluster, %d for the protocol; want at most twice as many for the protocol", dials[wire.RejectCluster], dials[wire.RejectProtocol])
	}
	t.Logf("dials in a minute: %v", dials)
}
