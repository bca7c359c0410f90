package resp

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// readSyscalls returns how many read system calls the process has made, from
// /proc/self/io (Linux), or false where that is not available.
func readSyscalls(t *testing.T) (int64, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// TestRawReadSkipsEmptyRead: a client that sends one request at a time
// costs the server one read per request, not two (the second finding the
// socket empty): rawread.go. Counted over the whole process, whose client
// makes one or two reads per reply: 3 reads per request at most with the
// raw read, 4 without it.
func TestRawReadSkipsEmptyRead(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := dialRaw(t, addr)
	c.do("PING") // the connection is served and waits in a raw read
	before, ok := readSyscalls(t)
	if !ok {
		t.Skip("no /proc/self/io")
	}
	const requests = 2000
	for i := range requests {
		if got := c.do("PING"); got != "+PONG" {
			t.Fatalf("PING %d: %s", i, got)
		}
	}
	after, _ := readSyscalls(t)
	perRequest := float64(after-before) / requests
	t.Logf("%.2f read system calls per request, server and client together", perRequest)
	if perRequest > 3.5 {
		t.Errorf("%.2f read system calls per request; want at most 3 (the server's one and the client's two)", perRequest)
	}
}

// TestRawReadHalfClose: a client that sends its last request and closes
// its side at once (its FIN comes with the request, so no edge follows the
// read that takes it) gets its reply, and then the server closes: the read
// skipped after the batch is verified (rawVerifyAfter).
func TestRawReadHalfClose(t *testing.T) {
	s, addr := startServer(t, Config{})
	for i := range 20 {
		c := dialRaw(t, addr)
		if got := c.do("PING"); got != "+PONG" { // the connection waits in a raw read
			t.Fatalf("connection %d: PING: %s", i, got)
		}
		c.send(cmd("ECHO", "last") + cmd("PING"))
		if err := c.nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.expectClosed("$4\r\nlast\r\n+PONG\r\n")
	}
	testkit.Eventually(t, "the clients to be gone", func() bool { return s.Stats().Clients == 0 })
}

// TestRawReadWaitInPipeline: WAIT in the middle of a pipeline runs outside
// the raw read (its watcher reads the socket), and the commands around it
// are answered in order, each counted once.
func TestRawReadWaitInPipeline(t *testing.T) {
	s, addr := startServer(t, Config{})
	c := dialRaw(t, addr)
	c.do("PING")
	for range 3 {
		c.send(cmd("SET", "k", "v") + cmd("WAIT", "0", "0") + cmd("GET", "k") + cmd("WAIT", "0", "0"))
		c.expect("+OK\r\n:0\r\n$1\r\nv\r\n:0\r\n")
	}
	st := s.CommandLatency()
	if got := st["wait"].Count(); got != 6 {
		t.Errorf("wait counted %d times; want 6", got)
	}
	if got := st["get"].Count(); got != 3 {
		t.Errorf("get counted %d times; want 3", got)
	}
}

// TestRawReadKillDuringBatch: CLIENT KILL of a connection that is running
// a batch inside its raw read neither waits for it nor leaves it open: the
// victim's pipeline of slow replies ends, and its client sees the close.
func TestRawReadKillDuringBatch(t *testing.T) {
	// The write bound is far beyond the wait below: only the kill can end
	// the victim's write.
	s, addr := startServer(t, Config{RequestTimeout: time.Hour})
	admin := dialRaw(t, addr)
	victim := dialRaw(t, addr)
	victim.do("PING")
	id := strings.TrimPrefix(victim.do("CLIENT", "ID"), ":")
	// A long batch whose replies the victim's client does not read: the
	// victim blocks in a write, inside its raw read.
	big := strings.Repeat("x", 64<<10)
	victim.do("SET", "big", big)
	var pipe bytes.Buffer
	for range 200 {
		pipe.WriteString(cmd("GET", "big"))
	}
	victim.send(pipe.String())
	testkit.Eventually(t, "the victim to run its batch", func() bool {
		for line := range strings.Lines(admin.do("CLIENT", "LIST")) {
			if strings.Contains(line, "id="+id+" ") {
				return strings.Contains(line, "cmd=get")
			}
		}
		return false
	})
	if got := admin.do("CLIENT", "KILL", "ID", id); got != ":1" {
		t.Fatalf("CLIENT KILL ID: %s", got)
	}
	testkit.Eventually(t, "the victim to be gone", func() bool { return s.Stats().Clients == 1 })
	victim.nc.SetReadDeadline(time.Now().Add(30 * time.Second)) // only catches a hang
	if _, err := bufio.NewReader(victim.nc).WriteTo(devNull{}); err != nil && !isReset(err) {
		t.Fatalf("victim's client: %v; want the connection closed", err)
	}
}

type devNull struct{}

func (devNull) Write(b []byte) (int, error) { return len(b), nil }

// TestRawReadWaitStaysWatched: a client blocked in WAIT for several of
// the verifier's periods, after batches that skipped their empty read, is
// still watched: when it disconnects, the wait ends at once (the verifier
// leaves connections in WAIT alone, and the watcher ignores a stray poke).
func TestRawReadWaitStaysWatched(t *testing.T) {
	nodes := openRegions(t, "us", "eu")
	s, addr := startServer(t, Config{Node: nodes[0]})
	r := dialRaw(t, addr)
	r.do("PING") // a batch that skips the empty read
	r.send(cmd("SET", "k", "v") + cmd("WAIT", "5", "0"))
	r.expect("+OK\r\n")
	testkit.Eventually(t, "the client to block", func() bool { return s.blocked.Load() == 1 })
	time.Sleep(6 * rawVerifyAfter) // not waiting for an event: the verifier ticks meanwhile
	r.nc.Close()
	testkit.Eventually(t, "the wait to end with its client", func() bool {
		return s.blocked.Load() == 0 && s.Stats().Clients == 0
	})
}
