package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestReadTestHooks(t *testing.T) {
	tests := []struct {
		env  []string
		want time.Duration
		err  string
	}{
		{nil, 0, ""},
		{[]string{"GEOCACHE_TEST_CLOCK_OFFSET="}, 0, ""},
		{[]string{"HOME=/root", "GEOCACHE_TEST_CLOCK_OFFSET=-250ms"}, -250 * time.Millisecond, ""},
		{[]string{"GEOCACHE_TEST_CLOCK_OFFSET=1h"}, time.Hour, ""},
		{[]string{"GEOCACHE_TEST_CLOCK_OFFSET=soon"}, 0, `invalid value "soon" for GEOCACHE_TEST_CLOCK_OFFSET`},
	}
	for _, tt := range tests {
		h, err := readTestHooks(tt.env)
		switch {
		case tt.err != "" && (!errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: %v, want a usage error containing %q", tt.env, err, tt.err)
		case tt.err == "" && (err != nil || h.clockOffset != tt.want):
			t.Errorf("%q: offset %v, %v; want %v", tt.env, h.clockOffset, err, tt.want)
		}
	}
	// A misspelt hook is reported like any unknown variable.
	c, _, err := parseServeConfig(nil, []string{"GEOCACHE_TEST_CLOCK_OFSET=1s", "GEOCACHE_TEST_CLOCK_OFFSET=1s"})
	if err != nil || len(c.unknownEnv) != 1 || c.unknownEnv[0] != "GEOCACHE_TEST_CLOCK_OFSET" {
		t.Errorf("unknown variables %q, %v; want the misspelt hook only", c.unknownEnv, err)
	}
}

// GEOCACHE_TEST_CLOCK_OFFSET skews the clock the node serves with: TIME,
// answered from the node's clock, is an hour ahead.
func TestTestClockOffsetSkewsTheNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	args := []string{"--log-format", "json", "--addr", "127.0.0.1:0"}
	go func() {
		done <- serve(ctx, args, []string{"GEOCACHE_TEST_CLOCK_OFFSET=1h"}, nil, &bytes.Buffer{}, logs)
	}()
	defer func() { cancel(); waitExit(t, done, logs) }()
	rec := logRecord(t, logs, "geocache serving")
	addr, _ := rec["addr"].(string)
	conn, err := net.DialTimeout("tcp", addr, e2eHang)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(e2eHang))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nTIME\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var lines []string
	for range 3 { // *2, $n, seconds
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reply %q: %v", lines, err)
		}
		lines = append(lines, strings.TrimSuffix(line, "\r\n"))
	}
	now := time.Now().Unix()
	secs, err := strconv.ParseInt(lines[2], 10, 64)
	if err != nil || lines[0] != "*2" {
		t.Fatalf("TIME answered %q", lines)
	}
	if ahead := secs - now; ahead < 3500 || ahead > 3700 {
		t.Errorf("TIME is %d s ahead of this clock, want about 3600", ahead)
	}
}
