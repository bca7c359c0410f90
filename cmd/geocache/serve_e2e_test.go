package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// respCall sends one command as a RESP array of bulk strings and returns
// the reply: a simple string, error or integer as its line ("+OK",
// "-ERR ...", ":1"), a bulk string as its contents, a null as "(nil)".
func respCall(t *testing.T, c net.Conn, r *bufio.Reader, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	c.SetDeadline(time.Now().Add(e2eHang)) // only catches a hang
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("%v: write: %v", args, err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%v: read: %v", args, err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil {
		t.Fatalf("%v: bad bulk header %q", args, line)
	}
	if n < 0 {
		return "(nil)"
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("%v: read bulk: %v", args, err)
	}
	return string(buf[:n])
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode, string(body)
}

// The binary, as an operator runs it: configured by flags and environment,
// spoken to in raw RESP, scraped over HTTP, stopped by SIGTERM.
func TestServeBinaryEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the binary with")
	}
	bin := filepath.Join(t.TempDir(), "geocache")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "GEOCACHE_REGION=e2e", "GEOCACHE_NODE=9", "GEOCACHE_LOG_FORMAT=json", "GEOCACHE_MAX_MEMORY=32MB")
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	rec := logRecord(t, logs, "geocache serving")
	respAddr, _ := rec["addr"].(string)
	peerAddr, _ := rec["peer_addr"].(string)
	adminAddr, _ := rec["admin_addr"].(string)
	if rec["node"] != "e2e-9" || rec["max_memory"] != "32MiB" {
		t.Errorf("startup record %v: environment not applied", rec)
	}

	var conn net.Conn
	deadline := time.Now().Add(e2eHang)
	for conn == nil {
		if conn, err = net.Dial("tcp", respAddr); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("RESP port %s: %v", respAddr, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "+PONG"},
		{[]string{"SET", "greeting", "hello, world"}, "+OK"},
		{[]string{"GET", "greeting"}, "hello, world"},
		{[]string{"GET", "missing"}, "(nil)"},
	} {
		if got := respCall(t, conn, r, step.args...); got != step.want {
			t.Errorf("%v = %q, want %q", step.args, got, step.want)
		}
	}

	if code, body := httpGet(t, "http://"+adminAddr+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+adminAddr+"/readyz"); code != 200 || !strings.Contains(body, "node e2e-9 id 9 region e2e") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	code, body := httpGet(t, "http://"+adminAddr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	metric := func(name string) float64 {
		mf := mfs[name]
		if mf == nil || len(mf.GetMetric()) == 0 {
			t.Errorf("/metrics lacks %s", name)
			return -1
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	for _, c := range []struct {
		name string
		ok   func(float64) bool
		want string
	}{
		{"geocache_entries", func(v float64) bool { return v == 1 }, "1"},
		{"geocache_hits_total", func(v float64) bool { return v == 1 }, "1"},
		{"geocache_misses_total", func(v float64) bool { return v == 1 }, "1"},
		{"geocache_memory_max_bytes", func(v float64) bool { return v == 32<<20 }, "32 MiB"},
		{"geocache_replication_last_seq", func(v float64) bool { return v == 1 }, "1"},
		{"geocache_resp_clients", func(v float64) bool { return v == 1 }, "1 (this test's connection)"},
		{"geocache_resp_commands_total", func(v float64) bool { return v >= 4 }, ">= 4"},
		{"geocache_resp_connections_total", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"go_goroutines", func(v float64) bool { return v > 0 }, "> 0"},
		{"process_open_fds", func(v float64) bool { return v > 0 }, "> 0"},
	} {
		if v := metric(c.name); !c.ok(v) {
			t.Errorf("%s = %v, want %s", c.name, v, c.want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(e2eHang):
		t.Fatalf("still running %v after SIGTERM:\n%s", e2eHang, logs.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	logRecord(t, logs, "geocache stopped")
	// The server closed the client's connection on its way out.
	conn.SetReadDeadline(time.Now().Add(e2eHang))
	if _, err := r.ReadByte(); err == nil {
		t.Error("the RESP connection is still open after the shutdown")
	}
	checkReleased(t, respAddr, peerAddr, adminAddr)
}
