package resp

import (
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// Closing a connection from another goroutine while its own goroutine runs
// a batch inside its raw read (rawread.go): the rest of the batch must
// neither run nor undo the close. Each test holds a command of the batch
// (CONFIG SET waits for configMu) while the connection is closed, and
// waits for the connection to go; the generous deadlines only catch the
// hangs these tests were written for (found in review, each failing before
// the fix).

// waitInCmd waits until connection id's CLIENT LIST line shows cmd=name.
func waitInCmd(t *testing.T, admin *rawConn, id, name string) {
	t.Helper()
	testkit.Eventually(t, "connection "+id+" to run "+name, func() bool {
		for line := range strings.Lines(admin.do("CLIENT", "LIST")) {
			if strings.Contains(line, "id="+id+" ") && strings.Contains(line, "cmd="+name+" ") {
				return true
			}
		}
		return false
	})
}

// A client killed in the middle of its batch, with a SUBSCRIBE later in the
// batch and replies the client never reads: the SUBSCRIBE must not run
// (its writer cleared the past write deadline the kill had set, and
// blocked on the client for ever, and Server.Close with it).
func TestRawReadKillBeforeSubscribeInBatch(t *testing.T) {
	s, addr := startServer(t, Config{})
	admin, victim := dialRaw(t, addr), dialRaw(t, addr)
	victim.do("PING") // the connection waits in a raw read
	id := strings.TrimPrefix(victim.do("CLIENT", "ID"), ":")
	victim.do("SET", "big", strings.Repeat("x", 512<<10))
	var pipe strings.Builder
	pipe.WriteString(cmd("CONFIG", "SET", "timeout", "0"))
	pipe.WriteString(cmd("HELLO", "3"))
	pipe.WriteString(cmd("SUBSCRIBE", "ch"))
	for range 100 {
		pipe.WriteString(cmd("GET", "big")) // 50 MiB the client never reads
	}
	s.configMu.Lock()
	victim.send(pipe.String())
	waitInCmd(t, admin, id, "config")
	if got := admin.do("CLIENT", "KILL", "ID", id); got != ":1" {
		s.configMu.Unlock()
		t.Fatalf("CLIENT KILL: %s", got)
	}
	s.configMu.Unlock()
	testkit.Eventually(t, "the killed client to be gone", func() bool { return s.Stats().Clients == 1 })
}

// Server.Close while a connection that has never written runs a batch
// whose replies its client does not read: the batch's first write must not
// arm a fresh write deadline over the close's past one (Close then waited
// the whole RequestTimeout).
func TestRawReadCloseBeforeFirstWrite(t *testing.T) {
	s, addr := startServer(t, Config{RequestTimeout: time.Hour})
	admin, victim := dialRaw(t, addr), dialRaw(t, addr)
	admin.do("SET", "big", strings.Repeat("x", 512<<10))
	victim.nc.Write(nil)
	var victimID string // the newest connection's: it has written nothing
	testkit.Eventually(t, "the victim to be served", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		var newest int64
		for c := range s.conns {
			newest = max(newest, c.id)
		}
		victimID = strconv.FormatInt(newest, 10)
		return len(s.conns) == 2
	})
	var pipe strings.Builder
	pipe.WriteString(cmd("CONFIG", "SET", "timeout", "0"))
	for range 100 {
		pipe.WriteString(cmd("GET", "big"))
	}
	s.configMu.Lock()
	victim.send(pipe.String())
	waitInCmd(t, admin, victimID, "config")
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	testkit.Eventually(t, "Close to mark the connections closed", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closed
	})
	s.configMu.Unlock()
	select {
	case <-closed:
	case <-time.After(testkit.EventuallyTimeout):
		t.Fatal("Server.Close still waiting for a client that does not read")
	}
}

// GEOCACHE ACK ALL and a write in one batch: the write waits for
// acknowledgements outside the raw read, so CLIENT KILL closes the
// client's socket at once, not when the wait for acknowledgements ends.
func TestRawReadKillDuringAckInBatch(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	s, addr := startServer(t, Config{Node: nodes[0]})
	linksUp(t, nodes)
	nodes[1].Close()
	testkit.Eventually(t, "us to see eu down", func() bool { return !nodes[0].Stats().Peers[0].Connected })
	admin, victim := dialRaw(t, addr), dialRaw(t, addr)
	victim.do("PING")
	id := strings.TrimPrefix(victim.do("CLIENT", "ID"), ":")
	victim.send(cmd("GEOCACHE", "ACK", "ALL", "3600000") + cmd("SET", "k", "v"))
	victim.expect("+OK\r\n")
	testkit.Eventually(t, "the write to wait for eu", func() bool { return s.blocked.Load() == 1 })
	if got := admin.do("CLIENT", "KILL", "ID", id); got != ":1" {
		t.Fatalf("CLIENT KILL: %s", got)
	}
	victim.nc.SetReadDeadline(time.Now().Add(testkit.EventuallyTimeout))
	if b, err := io.ReadAll(victim.nc); err != nil && !isReset(err) {
		t.Fatalf("the killed client's connection: read %q, %v; want it closed (not held until the acknowledgement timeout)", b, err)
	}
}
