package resp

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

// TestMaxClientBufferFlood: 30 connections each hold an unfinished large
// request. The bytes held across them never pass MaxClientBuffer: the
// connections that would need more are answered "-ERR max-client-buffer
// reached" and closed (counted in Rejected), small clients are served
// throughout, and once the flood is gone the budget is whole again and a
// large value can be written.
func TestMaxClientBufferFlood(t *testing.T) {
	const (
		valueSize = 1_000_000
		sent      = 400_000 // of each value: its buffer grows to 512 KiB
		budget    = 4 << 20
		attackers = 30
	)
	s, addr := startServer(t, Config{
		Node:            testNode(t, geocache.Config{MaxValueBytes: valueSize}),
		MaxRequestBytes: valueSize + 1<<16,
		MaxClientBuffer: budget,
	})
	before := s.Stats().Rejected
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*rawConn, attackers)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
	}
	for _, r := range conns {
		wg.Go(func() {
			// Write errors are expected: the server may close first.
			r.nc.SetWriteDeadline(time.Now().Add(testkit.EventuallyTimeout))
			io.WriteString(r.nc, "*3\r\n$3\r\nSET\r\n$5\r\nflood\r\n$1000000\r\n"+strings.Repeat("f", sent))
			r.nc.SetReadDeadline(time.Now().Add(testkit.EventuallyTimeout))
			got, _ := io.ReadAll(r.br) // until the server closes it, or the test does
			switch string(got) {
			case "-ERR max-client-buffer reached\r\n":
				refused.Add(1)
			case "":
			default:
				other.Add(1)
				t.Errorf("a flooding client got %q", got)
			}
		})
	}
	// 512 KiB buffers: at most 8 fit in 4 MiB, so at least 22 are refused.
	testkit.Eventually(t, "flooding connections to be refused", func() bool {
		if b := s.Stats().BufferBytes; b > budget {
			t.Fatalf("BufferBytes = %d; over MaxClientBuffer %d", b, budget)
		}
		return refused.Load() >= attackers-8
	})
	if b := s.Stats().BufferBytes; b > budget || b <= 0 {
		t.Errorf("BufferBytes = %d during the flood; want within (0, %d]", b, budget)
	}
	// Every refusal counted reaches its client, which may not have read it
	// yet: wait for the counts to agree (a generous deadline only catches a
	// refusal counted twice or never answered).
	testkit.Eventually(t, "Rejected to count the refused connections", func() bool {
		return s.Stats().Rejected-before == uint64(refused.Load())
	})
	healthy(t, addr)

	for _, r := range conns {
		r.nc.Close()
	}
	wg.Wait()
	testkit.Eventually(t, "the budget to be given back", func() bool { return s.Stats().BufferBytes == 0 })
	r := dialRaw(t, addr)
	big := strings.Repeat("v", valueSize)
	if got := r.do("SET", "big", big); got != "+OK" {
		t.Fatalf("SET of a large value after the flood: %.100s", got)
	}
	if got := r.do("STRLEN", "big"); got != ":1000000" {
		t.Fatalf("STRLEN: %s", got)
	}
	testkit.Eventually(t, "the large request's buffer to be given back", func() bool { return s.Stats().BufferBytes == 0 })
}

func TestMaxClientBufferValidation(t *testing.T) {
	node := testNode(t, geocache.Config{MaxBytes: 1 << 30})
	s, err := New(Config{Node: node, MaxRequestBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.cfg.MaxClientBuffer; got != 256<<20 {
		t.Errorf("default MaxClientBuffer = %d; want a quarter of MaxBytes, %d", got, 256<<20)
	}
	s.Close()
	small := testNode(t, geocache.Config{MaxBytes: 1 << 20})
	s, err = New(Config{Node: small, MaxRequestBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.cfg.MaxClientBuffer; got != 16<<20 {
		t.Errorf("default MaxClientBuffer = %d; want 16 requests of MaxRequestBytes, %d", got, 16<<20)
	}
	s.Close()
	for _, bad := range []Config{
		{Node: node, MaxClientBuffer: -1},
		{Node: node, MaxRequestBytes: 1 << 20, MaxClientBuffer: 1 << 20}, // cannot hold one request
		{Node: node, AuthTimeout: -time.Second},
		{Node: node, RequestTimeout: -time.Second},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// TestLargeRequestBufferShrinks: the buffer a large request grew is given
// back to MaxClientBuffer even when the client leaves part of its next
// command for a later read.
func TestLargeRequestBufferShrinks(t *testing.T) {
	s, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	// Many small arguments: the buffer grows by doubling (no argument
	// announces the whole size), so the next command's first bytes share it.
	args := []string{"MSET"}
	for i := range 5000 {
		args = append(args, "key"+strconv.Itoa(i), strings.Repeat("v", 50))
	}
	r.send(cmd(args...) + "*1\r\n$4\r\nPI")
	if got := r.reply(); got != "+OK" {
		t.Fatalf("SET: %s", got)
	}
	testkit.Eventually(t, "the large buffer to be given back", func() bool { return s.Stats().BufferBytes == 0 })
	r.send("NG\r\n")
	if got := r.reply(); got != "+PONG" {
		t.Fatalf("the command split across reads: %s", got)
	}
}
