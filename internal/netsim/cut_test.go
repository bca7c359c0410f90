package netsim

import (
	"bufio"
	"errors"
	"net"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/geocache/geocache/internal/testkit"
)

// echo serves lines back until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback TCP")
	}
	testkit.Echo(t, ln)
	return ln.Addr().String()
}

// roundTrip sends a line on c and reads it back.
func roundTrip(c net.Conn) error {
	c.SetDeadline(time.Now().Add(time.Minute)) // only catches a hang
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		err = errors.New("echoed " + line)
	}
	return err
}

// A cut proxy passes nothing: an open connection and a new one fail at
// their first byte; uncut, it passes again, at the same address.
func TestCutAndUncut(t *testing.T) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	px := toxiproxy.NewProxy(srv, "p", "127.0.0.1:0", echo(t))
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	defer px.Stop()
	addr := px.Listen
	open, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := roundTrip(open); err != nil {
		t.Fatalf("before the cut: %v", err)
	}

	for range 2 { // cutting twice is cutting once
		if err := Cut(px); err != nil {
			t.Fatal(err)
		}
	}
	if err := roundTrip(open); err == nil {
		t.Error("an open connection passed a line through a cut proxy")
	}
	c, err := net.Dial("tcp", addr)
	if err == nil {
		err = roundTrip(c)
		c.Close()
	}
	if err == nil {
		t.Error("a new connection passed a line through a cut proxy")
	}

	for range 2 { // uncutting an uncut proxy changes nothing
		if err := Uncut(px); err != nil {
			t.Fatal(err)
		}
	}
	if px.Listen != addr {
		t.Errorf("the proxy moved from %s to %s", addr, px.Listen)
	}
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Errorf("after the cut: %v", err)
	}
}
