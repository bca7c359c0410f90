package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/geocache/geocache/internal/store"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/geocache/geocache/internal/wire"
)

// fetchPair starts an owner "b" that holds every slot but heldOut (Holds)
// and an asker "a" that has no peers: a's fetches go to b on connections of
// their own.
func fetchPair(t *testing.T, mem *testkit.Network, heldOut int, cfg Config) (a, b *node) {
	t.Helper()
	cfg.NodeID = 2
	cfg.Holds = func(slot int) bool { return slot != heldOut }
	b = startTestNode(t, mem, "b", cfg, true)
	a = startTestNode(t, mem, "a", Config{NodeID: 1}, false)
	return a, b
}

// acceptFetcher accepts the node's next fetch connection on ln, reads its
// FetchHello and answers it with h.
func acceptFetcher(ln *fakeListener, h *wire.Hello) *fakePeer {
	ln.t.Helper()
	p := ln.accept()
	recvAs[*wire.FetchHello](ln.t, p)
	p.send(h)
	return p
}

// A fetch returns the owner's entry, tombstone or nothing, with its
// version, says when the owner may lack writes of the key's slot, and
// makes the entry most recently used there only when it reads.
func TestFetchAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		partialKey := "{p}x"
		a, b := fetchPair(t, mem, cluster.KeySlot(partialKey), Config{})
		ts := at(0)
		b.hold(t, "k", "v", ts, 7)
		b.hold(t, partialKey, "p", ts+1, 7)
		if res := b.st.Apply(store.Op{Kind: store.KindDelete, Key: "gone", Version: store.Version{HLC: ts + 2, Origin: 8}}); res != store.Applied {
			t.Fatal(res)
		}
		ctx := context.Background()
		for _, tc := range []struct {
			key            string
			found, partial bool
			kind           store.Kind
			value          string
			version        store.Version
		}{
			{"k", true, false, store.KindSet, "v", store.Version{HLC: ts, Origin: 7}},
			{partialKey, true, true, store.KindSet, "p", store.Version{HLC: ts + 1, Origin: 7}},
			{"gone", true, false, store.KindDelete, "", store.Version{HLC: ts + 2, Origin: 8}},
			{"never", false, false, 0, "", store.Version{}},
		} {
			got, err := a.r.Fetch(ctx, "b", tc.key, false)
			if err != nil {
				t.Fatalf("fetch %s: %v", tc.key, err)
			}
			if got.Found != tc.found || got.Partial != tc.partial || got.Op.Kind != tc.kind || string(got.Op.Value) != tc.value || got.Op.Version != tc.version {
				t.Errorf("fetch %s: %+v; want found %v, partial %v, kind %v, value %q, version %v", tc.key, got, tc.found, tc.partial, tc.kind, tc.value, tc.version)
			}
		}
		if st := a.r.Stats(); st.FetchesSent != 4 || st.FetchFailures != 0 {
			t.Errorf("asker's stats: %d sent, %d failed; want 4, 0", st.FetchesSent, st.FetchFailures)
		}
		if st := b.r.Stats(); st.FetchesServed != 4 {
			t.Errorf("owner's stats: %d served; want 4", st.FetchesServed)
		}
		// The fetches took over no stream: b knows no origin 1.
		if o := b.r.Stats().Origins; len(o) != 0 {
			t.Errorf("the owner took fetches for a stream: origins %+v", o)
		}
	})
}

// Only a fetch that reads makes the owner's entry most recently used: of
// two entries in a store with room for one more, the one fetched with
// touch survives an eviction, the one peeked at does not.
func TestFetchTouches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, -1, Config{})
		ts := at(0)
		big := string(bytes.Repeat([]byte("x"), 300<<10))
		b.hold(t, "read", big, ts, 7)
		b.hold(t, "peeked", big, ts+1, 7)
		ctx := context.Background()
		if _, err := a.r.Fetch(ctx, "b", "peeked", false); err != nil {
			t.Fatal(err)
		}
		if _, err := a.r.Fetch(ctx, "b", "read", true); err != nil {
			t.Fatal(err)
		}
		b.hold(t, "new", big, ts+2, 7)
		b.hold(t, "new2", big, ts+3, 7)
		if !b.has("read") || b.has("peeked") {
			t.Errorf("after evictions: read kept %v, peeked kept %v; want true, false", b.has("read"), b.has("peeked"))
		}
	})
}

// A value too large for one frame comes as a large op, and small answers
// on the same connection, sent before or after it, each reach their own
// fetch; a counter comes with its state.
func TestFetchLargeAndMerged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, -1, Config{BatchBytes: 4 << 10})
		ts := at(0)
		large := bytes.Repeat([]byte("0123456789"), 10_000)
		b.hold(t, "small", "s", ts, 7)
		if res := b.st.Apply(store.Op{Kind: store.KindSet, Key: "large", Value: large, Version: store.Version{HLC: ts + 1, Origin: 7}}); res != store.Applied {
			t.Fatal(res)
		}
		if _, _, res, err := b.st.IncrBy("count", store.Version{HLC: ts + 2, Origin: 2}, 41, 0, 0); err != nil || res != store.Applied {
			t.Fatal(res, err)
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		got := make([]Fetched, 3)
		for i, key := range []string{"small", "large", "count"} {
			wg.Go(func() {
				f, err := a.r.Fetch(ctx, "b", key, true)
				if err != nil {
					t.Errorf("fetch %s: %v", key, err)
				}
				got[i] = f
			})
		}
		wg.Wait()
		if string(got[0].Op.Value) != "s" || !bytes.Equal(got[1].Op.Value, large) {
			t.Errorf("small %q, large of %d bytes (equal %v)", got[0].Op.Value, len(got[1].Op.Value), bytes.Equal(got[1].Op.Value, large))
		}
		e, ok := store.EntryOfOp(&got[2].Op)
		if !ok || e.Kind != store.KindCounter || string(e.Value) != "41" {
			t.Errorf("counter: %+v, %v; want a counter of 41", e, ok)
		}
	})
}

// A connection closed under a fetch (the owner restarted, or closed it as
// idle) is replaced: the next fetch dials again, and a fetch to a node
// that is gone fails with the dial's error, counted.
func TestFetchRedialsAndFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, -1, Config{DeadTimeout: 5 * time.Second})
		b.hold(t, "k", "v", at(0), 7)
		ctx := context.Background()
		if _, err := a.r.Fetch(ctx, "b", "k", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // both sides close the idle connection
		if f, err := a.r.Fetch(ctx, "b", "k", false); err != nil || string(f.Op.Value) != "v" {
			t.Fatalf("fetch after idle: %+v, %v", f, err)
		}
		b.r.Close()
		if _, err := a.r.Fetch(ctx, "b", "k", false); err == nil {
			t.Fatal("a fetch from a closed node succeeded")
		}
		if st := a.r.Stats(); st.FetchFailures == 0 {
			t.Error("the failed fetch was not counted")
		}
	})
}

// A dial that hangs (a peer gone without a word) holds up the fetches to
// that peer only.
func TestFetchDialsApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		b := startTestNode(t, mem, "b", Config{NodeID: 2}, true)
		b.hold(t, "k", "v", at(0), 7)
		dial := mem.Dialer("a")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, DeadTimeout: 10 * time.Second, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			if addr == "hung" {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return dial(ctx, addr)
		}}, false)
		hung := make(chan error, 1)
		go func() {
			_, err := a.r.Fetch(context.Background(), "hung", "k", false)
			hung <- err
		}()
		synctest.Wait() // the dial to "hung" is under way
		if f, err := a.r.Fetch(context.Background(), "b", "k", false); err != nil || string(f.Op.Value) != "v" {
			t.Fatalf("fetch from b while a dial hangs: %+v, %v", f, err)
		}
		select {
		case err := <-hung:
			t.Fatalf("the fetch from b returned after the hung dial gave up (%v)", err)
		default: // the dial to "hung" still hangs: b's fetch did not wait for it
		}
		if err := <-hung; err == nil {
			t.Error("a fetch from a peer whose dial hung succeeded")
		}
	})
}

// A connection found open that the peer closed under a fetch (as it
// closes an idle one) is replaced: the fetch is asked again, once, on a
// new connection.
func TestFetchRetriesOnANewConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, false)
		ln := listenFake(t, mem, "b")
		answer := func(p *fakePeer, value string) {
			q := recvAs[*wire.Fetch](t, p)
			p.send(&wire.Fetched{Found: true, Op: setOp(q.Key, value, at(0), fakeID)})
		}
		got := make(chan string, 2)
		fetch := func() {
			f, err := a.r.Fetch(context.Background(), "b", "k", false)
			if err != nil {
				t.Errorf("fetch: %v", err)
			}
			got <- string(f.Op.Value)
		}
		go fetch()
		p := acceptFetcher(ln, fakeHello(fakeID))
		answer(p, "first")
		if v := <-got; v != "first" {
			t.Fatalf("first fetch: %q", v)
		}
		go fetch()
		recvAs[*wire.Fetch](t, p) // taken, never answered
		p.c.Close()
		q := acceptFetcher(ln, fakeHello(fakeID))
		answer(q, "again")
		if v := <-got; v != "again" {
			t.Errorf("the fetch asked again: %q", v)
		}
		if st := a.r.Stats(); st.FetchFailures != 0 || st.FetchesSent != 2 {
			t.Errorf("stats: %d sent, %d failed; want 2, 0", st.FetchesSent, st.FetchFailures)
		}
	})
}

// A peer that accepts the connection and never answers its FetchHello
// holds each fetch no longer than the fetch's own context, and so do the
// fetches waiting for that dial.
func TestFetchStalledPeerHoldsNoLongerThanTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a := startTestNode(t, mem, "a", Config{NodeID: 1}, false)
		ln := listenFake(t, mem, "stalled")
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_, err := a.r.Fetch(ctx, "stalled", "k", false)
				errs <- err
			}()
		}
		p := ln.accept()
		recvAs[*wire.FetchHello](t, p) // and never answered
		// Well before the handshake's own timeout (5 s), every fetch has
		// given up, the one that dials included.
		time.Sleep(time.Second)
		for range 4 {
			select {
			case err := <-errs:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("a fetch from a stalled peer: %v; want its context's deadline", err)
				}
			default:
				t.Fatal("a fetch still waits for a stalled handshake after its context ended")
			}
		}
	})
}

// A fetch connection carries only fetches: a stream frame on it is
// refused and the connection closed, a fetching peer of another cluster is
// refused, and the node goes on answering others.
func TestFetchConnectionRefusesOtherFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, -1, Config{})
		b.hold(t, "k", "v", at(0), 7)

		p := dialFake(t, mem, "evil", "b")
		p.send(&wire.FetchHello{Hello: *fakeHello(fakeID)})
		recvAs[*wire.Hello](t, p)
		p.send(&wire.Ops{Origin: fakeID, FirstSeq: 1, Ops: []wire.Op{setOp("k", "forged", at(time.Second), fakeID)}})
		p.expectReject(wire.RejectBadFrame)

		other := fakeHello(fakeID)
		other.Cluster = "other"
		p = dialFake(t, mem, "evil2", "b")
		p.send(&wire.FetchHello{Hello: *other})
		p.expectReject(wire.RejectCluster)

		old := fakeHello(fakeID)
		old.Proto = fetchProto - 1 // a version without fetches
		p = dialFake(t, mem, "evil3", "b")
		p.send(&wire.FetchHello{Hello: *old})
		p.expectReject(wire.RejectProtocol)

		// A peer answering a fetch with a frame that answers nothing.
		ln := listenFake(t, mem, "liar")
		done := make(chan error, 1)
		go func() {
			_, err := a.r.Fetch(context.Background(), "liar", "k", false)
			done <- err
		}()
		q := acceptFetcher(ln, fakeHello(fakeID))
		recvAs[*wire.Fetch](t, q)
		q.send(&wire.ValuePart{Origin: fakeID, Data: []byte("x")})
		q.expectReject(wire.RejectBadFrame)
		if err := <-done; err == nil {
			t.Error("a fetch answered by a stray value part succeeded")
		}

		// A peer answering a FetchHello with a version without fetches.
		ln9 := listenFake(t, mem, "old")
		go func() {
			_, err := a.r.Fetch(context.Background(), "old", "k", false)
			done <- err
		}()
		old9 := fakeHello(fakeID)
		old9.Proto = fetchProto - 1
		q = acceptFetcher(ln9, old9)
		q.expectReject(wire.RejectProtocol)
		if err := <-done; err == nil {
			t.Error("a fetch from a peer that answered with a version without fetches succeeded")
		}

		if b.value("k") != "v" {
			t.Errorf("b holds %q; want v", b.value("k"))
		}
		if f, err := a.r.Fetch(context.Background(), "b", "k", false); err != nil || string(f.Op.Value) != "v" {
			t.Errorf("fetch after the attacks: %+v, %v", f, err)
		}
	})
}

// Fetches from many goroutines share one connection and each gets its own
// answer; past the bound on fetches in flight one fails at once.
func TestFetchPipelines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		a, b := fetchPair(t, mem, -1, Config{})
		ts := at(0)
		const n = 200
		for i := range n {
			b.hold(t, fmt.Sprint("k", i), fmt.Sprint("v", i), ts+1, 7)
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				f, err := a.r.Fetch(context.Background(), "b", fmt.Sprint("k", i), true)
				if err != nil || string(f.Op.Value) != fmt.Sprint("v", i) {
					t.Errorf("fetch k%d: %q, %v", i, f.Op.Value, err)
				}
			})
		}
		wg.Wait()
		if st := b.r.Stats(); st.InboundConns != 1 {
			t.Errorf("%d connections to the owner; want 1", st.InboundConns)
		}

		// A peer that never answers: the fetches pile up to the bound.
		ln := listenFake(t, mem, "mute")
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, maxFetchesInFlight+1)
		for range maxFetchesInFlight + 1 {
			go func() {
				_, err := a.r.Fetch(ctx, "mute", "k", false)
				errs <- err
			}()
		}
		acceptFetcher(ln, fakeHello(fakeID))
		if err := <-errs; !errors.Is(err, ErrFetchBusy) {
			t.Errorf("the fetch past the bound: %v; want ErrFetchBusy", err)
		}
		cancel()
		for range maxFetchesInFlight {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("a fetch waiting on a mute peer: %v; want its context's error", err)
			}
		}
	})
}

// A peer whose dial fails is not dialed again for every fetch: the
// fetches within fetchRedial fail at once with the dial's error, and the
// first one after dials again.
func TestFetchRedialBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		dial, dials := countingDialer(mem, "a")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, Dial: dial}, false)
		ctx := context.Background()
		for range 10 {
			if _, err := a.r.Fetch(ctx, "down", "k", false); err == nil {
				t.Fatal("a fetch from a peer that is not there succeeded")
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("10 fetches from a peer that is down dialed it %d times; want 1", n)
		}
		b := startTestNode(t, mem, "down", Config{NodeID: 2}, true)
		b.hold(t, "k", "v", at(0), 7)
		time.Sleep(fetchRedial)
		if f, err := a.r.Fetch(ctx, "down", "k", false); err != nil || string(f.Op.Value) != "v" {
			t.Fatalf("fetch once the peer is up and fetchRedial has passed: %+v, %v", f, err)
		}
		if n := dials.Load(); n != 2 {
			t.Errorf("%d dials; want 2", n)
		}
	})
}

// A peer that does not answer (its packets dropped, not refused) is not
// dialed again by every fetch either, though each dial ends with its
// fetch's shorter context.
func TestFetchRedialBacksOffAHungPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		dial, dials := countingDialer(mem, "a")
		a := startTestNode(t, mem, "a", Config{NodeID: 1, DeadTimeout: 4 * time.Second, Dial: dial}, false)
		startTestNode(t, mem, "down", Config{NodeID: 2}, true)
		mem.Cut("a", "down")
		for range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := a.r.Fetch(ctx, "down", "k", false)
			cancel()
			if err == nil {
				t.Fatal("fetched across a cut")
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("5 fetches from a peer that does not answer dialed it %d times; want 1", n)
		}
	})
}

// countingDialer is mem's dialer of node from, counting its dials.
func countingDialer(mem *testkit.Network, from string) (func(context.Context, string) (net.Conn, error), *atomic.Int64) {
	dials := new(atomic.Int64)
	dial := mem.Dialer(from)
	return func(ctx context.Context, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, addr)
	}, dials
}
