package testkit

import (
	"io"
	"net"
	"testing"
)

// Echo serves every connection ln accepts by sending back what it
// receives, until ln is closed; the test's cleanup closes it.
func Echo(t testing.TB, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}
