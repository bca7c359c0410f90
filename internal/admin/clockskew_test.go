package admin_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	"github.com/geocache/geocache/internal/testkit"
)

// offsetClock is the (virtual) system clock plus an offset.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) UnixNano() int64 { return time.Now().UnixNano() + c.offset.Load() }

// A node that refuses writes because its clock is far from its peers' is
// not ready.
func TestReadyzWhileClockSkewed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := testkit.NewNetwork()
		t.Cleanup(func() { mem.Close() })
		open := func(region string, id uint32, clock geocache.Clock, peers ...string) *geocache.Node {
			ln, err := mem.Listen(region)
			if err != nil {
				t.Fatal(err)
			}
			return openNode(t, geocache.Config{
				Region: region, NodeID: id, Peers: peers, Clock: clock,
				Listener: ln, Dial: mem.Dialer(region), PeerTimeout: 400 * time.Millisecond,
			})
		}
		skew := &offsetClock{}
		skew.offset.Store(int64(10 * time.Minute))
		// Three regions, so that the two in bounds outvote the skewed one.
		us := open("us", 1, nil, "eu", "ap")
		open("ap", 3, nil, "us", "eu")
		eu := open("eu", 2, skew, "us", "ap")
		<-eu.Ready()
		s := newServer(t, admin.Config{Node: eu})
		s.SetReady(true)
		if code, body := get(t, s.Handler(), http.MethodGet, "/readyz"); code != 503 || !strings.Contains(body, "clock") {
			t.Errorf("/readyz of a node refusing writes for its clock: %d\n%s", code, body)
		}
		<-us.Ready()
		ok := newServer(t, admin.Config{Node: us})
		ok.SetReady(true)
		if code, body := get(t, ok.Handler(), http.MethodGet, "/readyz"); strings.Contains(body, "clock") {
			t.Errorf("/readyz of a node in bounds: %d\n%s", code, body)
		}
	})
}
