package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/admin"
	"github.com/geocache/geocache/internal/testkit"
)

// With RequirePeers, a node whose only peer was never reached is not
// ready, and says which region it lacks and why; it becomes ready once the
// peer answers. Without it, the same node is ready and lists the peer as
// never connected.
func TestReadyzRequirePeers(t *testing.T) {
	mem := testkit.NewNetwork()
	t.Cleanup(func() { mem.Close() })
	ln, err := mem.Listen("eu")
	if err != nil {
		t.Fatal(err)
	}
	eu := openNode(t, geocache.Config{
		Region: "eu", NodeID: 1, Peers: []string{"us"}, MaxClockOffset: 20 * time.Millisecond,
		Listener: ln, Dial: mem.Dialer("eu"), PeerTimeout: 200 * time.Millisecond,
	})
	strict := newServer(t, admin.Config{Node: eu, RequirePeers: true})
	lenient := newServer(t, admin.Config{Node: eu})
	strict.SetReady(true)
	lenient.SetReady(true)
	<-eu.Ready()
	<-eu.Synced() // us is down at start: not waited for

	code, body := get(t, strict.Handler(), http.MethodGet, "/readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready: no peer of region unknown (peer us) is reachable (us: unreachable") {
		t.Errorf("RequirePeers, peer never reached: %d\n%s", code, body)
	}
	code, body = get(t, lenient.Handler(), http.MethodGet, "/readyz")
	if code != 200 || !strings.Contains(body, "peer us region unknown never connected") || !strings.Contains(body, "last error") {
		t.Errorf("default, peer never reached: %d\n%s", code, body)
	}

	usLn, err := mem.Listen("us")
	if err != nil {
		t.Fatal(err)
	}
	openNode(t, geocache.Config{
		Region: "us", NodeID: 2, Peers: []string{"eu"}, Listener: usLn, Dial: mem.Dialer("us"), PeerTimeout: 200 * time.Millisecond,
	})
	testkit.Eventually(t, "eu ready with RequirePeers once us answers", func() bool {
		code, _ := get(t, strict.Handler(), http.MethodGet, "/readyz")
		return code == 200
	})
	if _, body := get(t, strict.Handler(), http.MethodGet, "/readyz"); !strings.Contains(body, "peer us region us connected") || strings.Contains(body, "last error") {
		t.Errorf("a connected peer still shows an error:\n%s", body)
	}
}
