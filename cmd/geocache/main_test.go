package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"demo", "-latency", "5ms", "-ttl", "300ms", "-duration", "1ms", "-base-port", "0"}
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, errOut.String(), out.String())
	}
	for _, want := range []string{"visible after", "item:0000 kept", "item:0000 evicted", "gone", "holds 100 of 100", "acknowledged by a majority", "redis-cli -h 127.0.0.1 -p", "stopping"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut.String())
	}
}
