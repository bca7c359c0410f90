package main

import (
	"errors"
	"net"
	"testing"
	"time"
)

// The demo's regions replicate over mutual TLS: each node has a TLS
// configuration, and a plaintext connection to a replication port is
// closed without an answer.
func TestDemoLinksOverMTLS(t *testing.T) {
	c, err := startDemoCluster(0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for i, n := range c.nodes {
		if n.Config().TLS == nil {
			t.Errorf("%s replicates in plaintext", demoRegions[i])
		}
	}
	conn, err := net.Dial("tcp", c.repl[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("\x00\x00\x00\x02\x01\x00"))
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // only catches a hang
	buf := make([]byte, 1024)
	for {
		n, err := conn.Read(buf)
		if n > 0 && buf[0] != 0x15 { // a TLS alert record, if anything
			t.Errorf("a plaintext peer got %q", buf[:n])
		}
		if err != nil {
			if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("a plaintext connection was kept open")
			}
			break
		}
	}
}
