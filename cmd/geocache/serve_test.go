package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// syncBuffer is testkit.SyncBuffer.
type syncBuffer = testkit.SyncBuffer

// logRecord returns the first JSON log record whose msg is msg, waiting up
// to e2eHang for it (a deadline that only catches a hang).
func logRecord(t *testing.T, logs interface{ String() string }, msg string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(e2eHang)
	for {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log record in:\n%s", msg, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func checkReleased(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("%s still held: %v", a, err)
			continue
		}
		ln.Close()
	}
}

func TestServeCommandLine(t *testing.T) {
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"serve", "-h"}, 0, "GEOCACHE_MAX_MEMORY", ""},
		{[]string{"serve", "--help"}, 0, "--max-tombstones", ""},
		{[]string{"serve", "--max-memory", "lots"}, 2, "", `geocache serve: invalid value "lots" for flag --max-memory`},
		{[]string{"serve", "--node", "0"}, 2, "", "from 1 to 4294967295"},
		{[]string{"serve", "now"}, 2, "", `unexpected argument "now"`},
		{[]string{"version"}, 0, "geocache ", ""},
		{[]string{"help"}, 0, "serve", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out.String(), errOut.String(), tt.code, tt.stdout, tt.stderr)
			}
			if tt.code == 2 && !strings.Contains(errOut.String(), "geocache serve -h") {
				t.Errorf("a usage error does not point to -h: %q", errOut.String())
			}
		})
	}
}

// serveInProcess runs serve with its own signal channel and returns its
// logs, the channel and where its exit status arrives.
func serveInProcess(t *testing.T, ctx context.Context, args ...string) (*syncBuffer, chan os.Signal, chan int) {
	t.Helper()
	logs := &syncBuffer{}
	sigs := make(chan os.Signal, 2)
	done := make(chan int, 1)
	args = append([]string{"--log-format", "json", "--addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, args...)
	go func() { done <- serve(ctx, args, nil, sigs, &bytes.Buffer{}, logs) }()
	return logs, sigs, done
}

func waitExit(t *testing.T, done <-chan int, logs *syncBuffer) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(e2eHang):
		t.Fatalf("serve did not stop:\n%s", logs.String())
	}
	return -1
}

func TestServeStopsOnSignal(t *testing.T) {
	logs, sigs, done := serveInProcess(t, context.Background())
	rec := logRecord(t, logs, "geocache serving")
	respAddr, _ := rec["addr"].(string)
	peerAddr, _ := rec["peer_addr"].(string)
	adminAddr, _ := rec["admin_addr"].(string)

	res, err := http.Get("http://" + adminAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("/readyz while serving: %d", res.StatusCode)
	}

	sigs <- syscall.SIGTERM
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, logs.String())
	}
	if rec := logRecord(t, logs, "shutting down"); !strings.Contains(rec["cause"].(string), "terminated") {
		t.Errorf("shutdown cause %v", rec["cause"])
	}
	logRecord(t, logs, "geocache stopped")
	checkReleased(t, respAddr, peerAddr, adminAddr)
}

func TestServeStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx, "--region", "eu-west", "--node", "4", "--max-memory", "16MB", "--peers", "127.0.0.1:1")
	rec := logRecord(t, logs, "geocache serving")
	if rec["node"] != "eu-west-4" || rec["max_memory"] != "16MiB" || rec["peers"] != "127.0.0.1:1" {
		t.Errorf("startup record %v", rec)
	}
	cancel()
	if code := waitExit(t, done, logs); code != 0 {
		t.Fatalf("exit %d:\n%s", code, logs.String())
	}
}

// A port that is taken fails the start with status 1 and releases what
// was already taken.
func TestServeListenFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	peerAddr := freeAddr(t)
	var out, errOut bytes.Buffer
	code := serve(context.Background(), []string{"--addr", busy.Addr().String(), "--peer-addr", peerAddr}, nil, nil, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "listen for RESP") {
		t.Fatalf("exit %d, stderr %q; want 1 and the listen error", code, errOut.String())
	}
	checkReleased(t, peerAddr)
}

// A configuration geocache.Open refuses is a usage error too.
func TestServeInvalidNodeConfig(t *testing.T) {
	var out, errOut bytes.Buffer
	code := serve(context.Background(), []string{"--addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--max-memory", "1"}, nil, nil, &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, stderr %q; want 2", code, errOut.String())
	}
}

func TestServeWarnings(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	args := []string{"--log-format", "json", "--addr", "0.0.0.0:0", "--peer-addr", "127.0.0.1:0", "--peers", "127.0.0.1:1"}
	env := []string{"GEOCACHE_TYPO=1", "GEOCACHE_TEST_CLOCK_OFFSET=1s"}
	go func() { done <- serve(ctx, args, env, nil, &bytes.Buffer{}, logs) }()
	logRecord(t, logs, "geocache serving")
	cancel()
	waitExit(t, done, logs)
	for _, want := range []string{"GEOCACHE_TYPO", "--node is not set", "without a password", "GEOCACHE_TEST_CLOCK_OFFSET is a test hook"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal)
	stop := make(chan struct{})
	exited := make(chan int, 1)
	logs := &syncBuffer{}
	go watchSignals(sigs, cancel, newLogger(logs, slog.LevelInfo, "json"), stop, func(code int) { exited <- code })

	sigs <- syscall.SIGINT
	<-ctx.Done()
	if cause := context.Cause(ctx); !strings.Contains(cause.Error(), "interrupt") {
		t.Errorf("cause %v", cause)
	}
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) after one signal", code)
	default:
	}
	sigs <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != 1 {
			t.Errorf("exit(%d) after the second signal, want 1", code)
		}
	case <-time.After(e2eHang):
		t.Fatal("no exit after the second signal")
	}
	logRecord(t, logs, "second signal: exiting now")
	close(stop)
}

// A node that listens for replication but has no peers is told that its
// own writes go nowhere.
func TestServeWarnsPeerAddrWithoutPeers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs, _, done := serveInProcess(t, ctx)
	rec := logRecord(t, logs, "--peer-addr without --peers: this node receives the writes of the nodes that list it, and sends its own nowhere")
	if rec["level"] != "WARN" {
		t.Errorf("record %v", rec)
	}
	cancel()
	waitExit(t, done, logs)
}
