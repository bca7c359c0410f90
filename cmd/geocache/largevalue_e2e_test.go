package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestServeLargeValues: geocache serve with --max-value-size at its
// largest, 512 MiB (Redis's), takes a 20 MiB value — far over the old
// 3 MiB limit — and gives it back byte for byte; every limit it derives
// from the flag lets a value of that size through (CONFIG GET reports
// them); a value of one byte more is answered Redis's protocol error as
// its header arrives, and the node serves on. Redis's default pub/sub hard
// limit, below such a message, is kept and warned about.
func TestServeLargeValues(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx, "--max-value-size", "512MB", "--max-memory", "4GB")
	addr, _ := logRecord(t, logs, "geocache serving")["addr"].(string)
	if !strings.Contains(logs.String(), "over the pub/sub hard limit") {
		t.Errorf("no warning about the pub/sub hard limit:\n%s", logs.String())
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: e2eHang, ReadTimeout: e2eHang, WriteTimeout: e2eHang})
	defer c.Close()
	cfg, err := c.ConfigGet(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"proto-max-bulk-len": "536870912", "geocache-max-value-bytes": "536870912",
		"client-query-buffer-limit":  "537919488",  // 512 MiB + 1 MiB
		"geocache-max-client-buffer": "8606711808", // 16 requests of that size
	} {
		if cfg[k] != want {
			t.Errorf("CONFIG GET %s = %q; want %q", k, cfg[k], want)
		}
	}
	big := make([]byte, 20<<20)
	rand.NewChaCha8([32]byte{42}).Read(big)
	if err := c.Set(context.Background(), "big", big, 0).Err(); err != nil {
		t.Fatalf("SET of 20 MiB: %v", err)
	}
	if got, err := c.Get(context.Background(), "big").Bytes(); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("GET of 20 MiB: %d bytes, equal %v, %v", len(got), bytes.Equal(got, big), err)
	}

	nc, err := net.DialTimeout("tcp", addr, e2eHang)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(e2eHang))
	io.WriteString(nc, "*3\r\n$3\r\nSET\r\n$4\r\nover\r\n$536870913\r\n")
	if got, _ := io.ReadAll(nc); string(got) != "-ERR Protocol error: invalid bulk length\r\n" {
		t.Fatalf("a value of 512 MiB + 1: %q; want Redis's protocol error, then the close", got)
	}
	if n, err := c.StrLen(context.Background(), "big").Result(); n != 20<<20 || err != nil {
		t.Fatalf("STRLEN after the refusal = %d, %v", n, err)
	}
	cancel()
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}
