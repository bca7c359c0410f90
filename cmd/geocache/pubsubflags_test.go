package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/geocache/geocache/internal/resp"
)

// --client-output-buffer-limit-pubsub takes Redis's "<hard> <soft>
// <seconds>", from the command line or its variable, and hands resp the
// limits, with Redis's 0 (no limit) as a limit never reached.
func TestPubSubLimitFlag(t *testing.T) {
	c, fs, err := parseServeConfig(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.pubsubLimit != (obufLimit{}) {
		t.Errorf("default %+v; want the zero value (resp's defaults)", c.pubsubLimit)
	}
	if h, s, st := c.pubsubLimit.respLimits(); h != 0 || s != 0 || st != 0 {
		t.Errorf("default as resp limits: %d %d %v; want zeros, resp's defaults", h, s, st)
	}
	if got, want := c.pubsubLimit.String(), fmt.Sprintf("%s %s %d", formatSize(resp.DefaultPubSubHardLimit),
		formatSize(resp.DefaultPubSubSoftLimit), resp.DefaultPubSubSoftTime/time.Second); got != want {
		t.Errorf("default written as %q; want resp's defaults, %q", got, want)
	}
	var help strings.Builder
	serveUsage(&help, fs)
	if !strings.Contains(help.String(), "GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB") || !strings.Contains(help.String(), "(default 32MiB 8MiB 60)") {
		t.Errorf("help lacks the variable or the default:\n%s", help.String())
	}

	const none = math.MaxInt64
	for _, tt := range []struct {
		args, env []string
		want      obufLimit
		wantResp  [3]int64 // hard, soft, soft time (ns) as resp.Config takes them
	}{
		{[]string{"--client-output-buffer-limit-pubsub", "64mb 16mb 120"}, nil,
			obufLimit{true, 64 << 20, 16 << 20, 2 * time.Minute}, [3]int64{64 << 20, 16 << 20, int64(2 * time.Minute)}},
		{nil, []string{"GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB=  pubsub 1GiB 256MB 5  "},
			obufLimit{true, 1 << 30, 256 << 20, 5 * time.Second}, [3]int64{1 << 30, 256 << 20, int64(5 * time.Second)}},
		{[]string{"--client-output-buffer-limit-pubsub=24MB 16MB 0"}, []string{"GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB=0 0 0"},
			obufLimit{true, 24 << 20, 16 << 20, 0}, [3]int64{24 << 20, 16 << 20, 1}}, // the flag wins
		{nil, []string{"GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB=0 0 0"},
			obufLimit{set: true}, [3]int64{none, none, 1}},
		{[]string{"--client-output-buffer-limit-pubsub", "0 8mb 60"}, nil,
			obufLimit{true, 0, 8 << 20, time.Minute}, [3]int64{none, 8 << 20, int64(time.Minute)}},
		{[]string{"--client-output-buffer-limit-pubsub", "32mb 0 60"}, nil,
			obufLimit{true, 32 << 20, 0, time.Minute}, [3]int64{32 << 20, none, int64(time.Minute)}},
		// The largest message with 64 KiB values is 64 + 65 KiB.
		{[]string{"--max-value-size", "64KB", "--client-output-buffer-limit-pubsub", "129kb 0 0"}, nil,
			obufLimit{true, 129 << 10, 0, 0}, [3]int64{129 << 10, none, 1}},
		// Redis's units: a bare k, m or g is a power of 1000.
		{[]string{"--client-output-buffer-limit-pubsub", "32m 8m 60"}, nil,
			obufLimit{true, 32_000_000, 8_000_000, time.Minute}, [3]int64{32_000_000, 8_000_000, int64(time.Minute)}},
		{[]string{"--client-output-buffer-limit-pubsub", "pubsub 2G 4096k 1"}, nil,
			obufLimit{true, 2_000_000_000, 4_096_000, time.Second}, [3]int64{2_000_000_000, 4_096_000, int64(time.Second)}},
	} {
		c, _, err := parseServeConfig(tt.args, tt.env)
		if err != nil {
			t.Errorf("%q %q: %v", tt.args, tt.env, err)
			continue
		}
		if c.pubsubLimit != tt.want {
			t.Errorf("%q %q: %+v; want %+v", tt.args, tt.env, c.pubsubLimit, tt.want)
		}
		h, s, st := c.pubsubLimit.respLimits()
		if got := [3]int64{h, s, int64(st)}; got != tt.wantResp {
			t.Errorf("%q %q: resp limits %v; want %v", tt.args, tt.env, got, tt.wantResp)
		}
		back, _, err := parseServeConfig([]string{"--max-value-size", formatSize(max(c.maxValueSize, 1)), "--client-output-buffer-limit-pubsub", c.pubsubLimit.String()}, nil)
		if err != nil || back.pubsubLimit != c.pubsubLimit {
			t.Errorf("%+v written as %q parses to %+v, %v", c.pubsubLimit, c.pubsubLimit.String(), back.pubsubLimit, err)
		}
	}
}

func TestPubSubLimitFlagErrors(t *testing.T) {
	const flag = "--client-output-buffer-limit-pubsub"
	for _, tt := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{flag, ""}, "", `want three values, "<hard> <soft> <seconds>"`},
		{[]string{flag, "32mb 8mb"}, "", `"32mb 8mb": want three values`},
		{[]string{flag, "32mb 8mb 60 60"}, "", "want three values"},
		{[]string{flag, "normal 0 0 0"}, "", "want three values"},
		{[]string{flag, "32 mb 8 mb 60"}, "", "want three values"},
		{[]string{flag, "lots 8mb 60"}, "", `hard limit: size "lots" must start with a whole number`},
		{[]string{flag, "32mb -1 60"}, "", `soft limit: size "-1" must start with a whole number`},
		{[]string{flag, "1.5gb 8mb 60"}, "", "only whole numbers"},
		{[]string{flag, "32mb 8zb 60"}, "", `unknown unit "zb"`},
		{[]string{flag, "9999999t 0 0"}, "", `size "9999999t" is too large`},
		{[]string{flag, "16800k 0 0"}, "", "the hard limit 16800000 is below the largest message, 16449KiB"},
		{[]string{flag, "32mb 8mb 1.5"}, "", `seconds "1.5": want a whole number of seconds`},
		{[]string{flag, "32mb 8mb -1"}, "", `seconds "-1"`},
		{[]string{flag, "32mb 8mb 60s"}, "", `seconds "60s"`},
		{[]string{flag, "32mb 8mb 9223372037"}, "", `seconds "9223372037"`},
		{[]string{flag, "8mb 32mb 60"}, "", "the soft limit 32MiB is above the hard limit 8MiB: it could never apply"},
		{[]string{flag, "16mb 0 0"}, "", "the hard limit 16MiB is below the largest message, 16449KiB (--max-value-size + 65KiB"},
		{[]string{flag, "2mb 1mb 60", "--max-value-size", "3MB"}, "", "the hard limit 2MiB is below the largest message, 3137KiB"},
		{nil, "32mb", "invalid value \"32mb\" for GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB: \"32mb\": want three values"},
	} {
		var env []string
		if tt.env != "" {
			env = []string{"GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB=" + tt.env}
		}
		_, _, err := parseServeConfig(tt.args, env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q %q: %v; want an error with %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// TestServePubSubOutputLimit: geocache serve hands the limits to the RESP
// server (CONFIG GET shows them), a subscriber that reads nothing is
// disconnected at the hard limit while the node serves on, and the metrics
// count it.
func TestServePubSubOutputLimit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx, "--max-value-size", "64KB", "--client-output-buffer-limit-pubsub", "2mb 1mb 3600")
	rec := logRecord(t, logs, "geocache serving")
	addr, _ := rec["addr"].(string)
	adminAddr, _ := rec["admin_addr"].(string)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Minute, ReadTimeout: time.Minute})
	defer c.Close()
	bg := context.Background()

	got, err := c.ConfigGet(bg, "client-output-buffer-limit").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := "normal 0 0 0 slave 0 0 0 pubsub 2097152 1048576 3600"; got["client-output-buffer-limit"] != want {
		t.Errorf("CONFIG GET client-output-buffer-limit = %q; want %q", got["client-output-buffer-limit"], want)
	}

	// A subscriber that reads its confirmation and nothing more.
	sub, err := net.DialTimeout("tcp", addr, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.SetDeadline(time.Now().Add(e2eHang))
	if _, err := sub.Write([]byte("SUBSCRIBE news\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(sub)
	var confirm string
	for range 6 { // *3 $9 subscribe $4 news :1
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("SUBSCRIBE confirmation: %q, %v", confirm, err)
		}
		confirm += line
	}
	if confirm != "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n" {
		t.Fatalf("SUBSCRIBE confirmation %q", confirm)
	}
	metric := func(name string) float64 {
		t.Helper()
		v, ok := e2eMetric(t, adminAddr, name)
		if !ok {
			t.Fatalf("/metrics lacks %s", name)
		}
		return v
	}
	if n := metric("geocache_resp_pubsub_channels"); n != 1 {
		t.Errorf("geocache_resp_pubsub_channels = %v while subscribed; want 1", n)
	}
	if n := metric("geocache_resp_output_buffer_limit_disconnections_total"); n != 0 {
		t.Errorf("geocache_resp_output_buffer_limit_disconnections_total = %v before any; want 0", n)
	}

	// Publish until the subscriber is gone: its 2 MiB past what the
	// sockets hold. The bound on the messages only catches a hang.
	payload := strings.Repeat("x", 60_000)
	sent := 0
	for ; ; sent++ {
		n, err := c.Publish(bg, "news", payload).Result()
		if err != nil {
			t.Fatalf("PUBLISH %d: %v", sent, err)
		}
		if n == 0 {
			break
		}
		if sent > 10_000 { // 600 MB: the limit is not applied
			t.Fatalf("the subscriber is still there after %d messages of 60 KB:\n%s", sent, logs.String())
		}
	}
	t.Logf("subscriber disconnected after %d messages of 60 KB", sent)
	if n := metric("geocache_resp_output_buffer_limit_disconnections_total"); n != 1 {
		t.Errorf("geocache_resp_output_buffer_limit_disconnections_total = %v; want 1", n)
	}
	if n := metric("geocache_resp_pubsub_channels"); n != 0 {
		t.Errorf("geocache_resp_pubsub_channels = %v after the disconnection; want 0", n)
	}
	if n := metric("geocache_resp_pubsub_output_bytes"); n != 0 {
		t.Errorf("geocache_resp_pubsub_output_bytes = %v after the disconnection; want 0", n)
	}
	// The subscriber's connection ends once it reads what the sockets held.
	if _, err := io.Copy(io.Discard, r); err != nil && !isConnReset(err) {
		t.Errorf("the disconnected subscriber's connection: %v", err)
	}
	if err := c.Set(bg, "after", "limit", 0).Err(); err != nil {
		t.Errorf("SET after the disconnection: %v", err)
	}
	cancel()
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}

// isConnReset reports a connection the server closed with unread input
// (the subscriber's SUBSCRIBE was read; a reset is possible all the same).
func isConnReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// With both limits off, serve warns that a stalled subscriber holds its
// messages in memory without bound.
func TestServeWarnsPubSubUnlimited(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx, "--client-output-buffer-limit-pubsub", "0 0 0")
	logRecord(t, logs, "geocache serving")
	cancel()
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
	if want := "turns both limits off"; !strings.Contains(logs.String(), want) {
		t.Errorf("logs lack %q:\n%s", want, logs.String())
	}
	ctx, cancel = context.WithCancel(context.Background())
	logs, _, done = serveInProcess(t, ctx, "--client-output-buffer-limit-pubsub", "0 8mb 60")
	logRecord(t, logs, "geocache serving")
	cancel()
	waitExit(t, done, logs)
	if strings.Contains(logs.String(), "turns both limits off") {
		t.Errorf("warned with a soft limit set:\n%s", logs.String())
	}
}
