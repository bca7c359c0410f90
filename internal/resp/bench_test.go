package resp

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache"
)

// hotConn returns a server on a fresh node and a connection of it that is
// driven by calling exec directly: the command path without the network.
func hotConn(t testing.TB) (*conn, *geocache.Node) {
	node := testNode(t, geocache.Config{})
	s, err := New(Config{Node: node})
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close(); s.Close() })
	return newConn(s, a), node
}

func argv(args ...string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

// TestHotPathAllocs pins what GET and SET allocate: GET nothing at all
// (the reply is written from the store's bytes, GetShared); SET one string
// beyond the node, the key the node keeps (the request's bytes are reused
// for the next request).
func TestHotPathAllocs(t *testing.T) {
	c, node := hotConn(t)
	val := []byte(strings.Repeat("v", 100))
	sess := node.NewSession()
	if err := sess.Set(bg, "user:12345", val); err != nil {
		t.Fatal(err)
	}
	nodeGet := testing.AllocsPerRun(200, func() { node.GetShared("user:12345") })
	nodeSet := testing.AllocsPerRun(200, func() { sess.Set(bg, "user:12345", val) })
	get, set := argv("GET", "user:12345"), argv("SET", "user:12345", string(val))
	respGet := testing.AllocsPerRun(200, func() { c.out = c.out[:0]; c.exec(get) })
	respSet := testing.AllocsPerRun(200, func() { c.out = c.out[:0]; c.exec(set) })
	t.Logf("allocations per call: node Get %v, RESP GET %v; node Set %v, RESP SET %v", nodeGet, respGet, nodeSet, respSet)
	if respGet != 0 || nodeGet != 0 {
		t.Errorf("RESP GET allocates %v times, the node's GetShared %v; want 0", respGet, nodeGet)
	}
	if respSet != nodeSet+1 {
		t.Errorf("RESP SET allocates %v times; the node's Set %v plus the key string", respSet, nodeSet)
	}
	if !bytes.HasPrefix(c.out, []byte("+OK\r\n")) {
		t.Errorf("SET replied %q", c.out)
	}
}

// TestReplyAllocs: the encoders append without allocating into a buffer
// with room.
func TestReplyAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	v := []byte("value")
	if n := testing.AllocsPerRun(100, func() {
		b := buf[:0]
		b = appendSimple(b, "OK")
		b = appendError(b, "ERR x\r\ny")
		b = appendInt(b, -12345)
		b = appendBulk(b, v)
		b = appendBulkString(b, "s")
		b = appendNull(b, false)
		b = appendNull(b, true)
		b = appendNullArray(b, false)
		b = appendArray(b, 3)
		b = appendMap(b, 2, true)
		b = appendMap(b, 2, false)
		b = appendSet(b, 2, true)
		b = appendVerbatim(b, "text", true)
		buf = b
	}); n != 0 {
		t.Errorf("%v allocations; want 0", n)
	}
	want := "+OK\r\n-ERR x  y\r\n:-12345\r\n$5\r\nvalue\r\n$1\r\ns\r\n$-1\r\n_\r\n*-1\r\n*3\r\n%2\r\n*4\r\n~2\r\n=8\r\ntxt:text\r\n"
	if string(buf) != want {
		t.Errorf("encoded %q\n\twant %q", buf, want)
	}
}

func BenchmarkNodeGet(b *testing.B) {
	node := testNode(b, geocache.Config{})
	node.Set(bg, "user:12345", make([]byte, 100))
	b.ReportAllocs()
	for b.Loop() {
		node.Get("user:12345")
	}
}

func BenchmarkNodeSet(b *testing.B) {
	node := testNode(b, geocache.Config{})
	val := make([]byte, 100)
	b.ReportAllocs()
	for b.Loop() {
		node.Set(bg, "user:12345", val)
	}
}

// benchRESP sends req (batch commands) per round trip to a server on
// loopback and reads the replies, which it knows the length of.
func benchRESP(b *testing.B, setup, req string, batch, replyLen int) {
	_, addr := startServer(b, Config{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if setup != "" {
		io.WriteString(nc, setup)
		io.ReadFull(nc, make([]byte, 5))
	}
	reqs := []byte(strings.Repeat(req, batch))
	replies := make([]byte, replyLen*batch)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	b.ResetTimer()
	cpu0 := totalCPU()
	for i := 0; i < b.N; i += batch {
		if _, err := nc.Write(reqs); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, replies); err != nil {
			b.Fatal(err)
		}
	}
	cpu := totalCPU() - cpu0
	b.StopTimer()
	// CPU time per command, of the server and this client together: less
	// sensitive than ns/op to other load on the machine.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if batch > 1 {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
	}
}

// totalCPU is the CPU time the process has used, user and system.
func totalCPU() time.Duration {
	user, sys := processCPU()
	return user + sys
}

var (
	benchVal = strings.Repeat("v", 100)
	benchSet = cmd("SET", "user:12345", benchVal)
	benchGet = cmd("GET", "user:12345")
	getReply = len("$100\r\n") + 100 + 2
)

func BenchmarkRESPGet(b *testing.B) { benchRESP(b, benchSet, benchGet, 1, getReply) }
func BenchmarkRESPSet(b *testing.B) { benchRESP(b, "", benchSet, 1, len("+OK\r\n")) }
func BenchmarkRESPGetPipelined(b *testing.B) {
	benchRESP(b, benchSet, benchGet, 100, getReply)
}
func BenchmarkRESPSetPipelined(b *testing.B) {
	benchRESP(b, "", benchSet, 100, len("+OK\r\n"))
}
