package geocache

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// A write published while its peer is unreachable is followed, when the
// link comes up, by the probes of the reconnect's anti-entropy round; if
// the receiver reads the Ops frame and a Probe in one read it defers the
// ack and never sends it, so the write is never acknowledged.
func TestAckNotHeldBackAfterReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		defer mem.Close()
		open := func(region string, id uint32, peer string) *Node {
			ln, _ := mem.Listen(region)
			n, err := Open(Config{Region: region, NodeID: id, Peers: []string{peer}, Listener: ln, Dial: mem.Dialer(region), PeerTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		eu := open("eu", 1, "us")
		defer eu.Close()
		us := open("us", 2, "eu")
		defer us.Close()
		eu.Set(context.Background(), "warm", []byte("x"))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := eu.Wait(ctx, 1); err != nil {
			t.Fatalf("first write: %v", err)
		}
		eu.Set(context.Background(), "k", []byte("v"))
		ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel2()
		got, err := eu.Wait(ctx2, 1)
		if err != nil {
			if _, gerr := us.Get("k"); gerr == nil {
				t.Fatalf("us holds k but eu's Wait: %d, %v", got, err)
			}
			t.Fatalf("Wait: %v", err)
		}
	})
}
