package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// proxyNet is a set of toxiproxy proxies run in this process, one per
// ordered pair of nodes. The proxy for X->Y listens on a free loopback port
// and forwards to Y's real replication address; X lists the proxy's address
// as Y's peer address, so every byte of the connection X dials to Y crosses
// it: X's log stream to Y in toxiproxy's "upstream" direction
// (client->server), Y's acks and pongs back to X in the "downstream"
// direction.
//
// One-way latency L is a latency toxic {latency: L, jitter: 0} on BOTH
// streams of every proxy. Toxiproxy's latency toxic holds each chunk it
// read from one side until L after the moment it was read, then writes it
// to the other side, so each stream is delayed by L one way (plus the
// proxy's own copy, a few tens of microseconds, and the Go timer's
// rounding: see the calibration). A round trip on one connection (X's
// Ping, Y's Pong) therefore crosses L twice: the RTT geocache reports in
// Stats().Peers[].RTT is about 2L. The connection Y dials to X crosses the
// Y->X proxy, with the same L each way, so the region pair is symmetric.
// linkRate, if positive, limits the upstream direction of every proxy
// added afterwards (the dialer's stream) to that many KB/s, with
// toxiproxy's bandwidth toxic.
var linkRate int64

type proxyNet struct {
	server  *toxiproxy.ApiServer
	mu      sync.Mutex
	proxies map[string]*toxiproxy.Proxy
}

func newProxyNet() *proxyNet {
	return &proxyNet{
		server:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		proxies: map[string]*toxiproxy.Proxy{},
	}
}

// add starts a proxy named name forwarding to upstream with one-way latency
// oneWay in each direction, and returns the address to dial.
func (pn *proxyNet) add(name, upstream string, oneWay time.Duration) (string, error) {
	if oneWay%time.Millisecond != 0 || oneWay < 0 {
		return "", fmt.Errorf("latency %v: toxiproxy's latency toxic takes whole milliseconds", oneWay)
	}
	p := toxiproxy.NewProxy(pn.server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("proxy %s: %w", name, err)
	}
	if oneWay > 0 {
		for _, stream := range []string{"upstream", "downstream"} {
			js := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"toxicity":1.0,"attributes":{"latency":%d,"jitter":0}}`,
				stream, stream, oneWay.Milliseconds())
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				p.Stop()
				return "", fmt.Errorf("proxy %s: latency toxic: %w", name, err)
			}
		}
	}
	if linkRate > 0 {
		js := fmt.Sprintf(`{"name":"bandwidth","type":"bandwidth","stream":"upstream","toxicity":1.0,"attributes":{"rate":%d}}`, linkRate)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			p.Stop()
			return "", fmt.Errorf("proxy %s: bandwidth toxic: %w", name, err)
		}
	}
	pn.mu.Lock()
	pn.proxies[name] = p
	pn.mu.Unlock()
	return p.Listen, nil
}

func (pn *proxyNet) get(name string) *toxiproxy.Proxy {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	return pn.proxies[name]
}

// disable stops the named proxies: their listeners close (dials are
// refused) and their open connections are closed.
func (pn *proxyNet) disable(names ...string) {
	for _, n := range names {
		pn.get(n).Stop()
	}
}

// enable restarts the named proxies on the same addresses.
func (pn *proxyNet) enable(names ...string) error {
	for _, n := range names {
		if err := pn.get(n).Start(); err != nil {
			return fmt.Errorf("proxy %s: %w", n, err)
		}
	}
	return nil
}

func (pn *proxyNet) close() {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	for _, p := range pn.proxies {
		p.Stop()
	}
}

func toxiproxyVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/Shopify/toxiproxy/v2" {
				return m.Version
			}
		}
	}
	return "unknown"
}

// calibrateProxy measures the proxy's own one-way delay: a client sends
// 8-byte messages carrying their send time at a paced rate through a proxy
// with one-way latency oneWay to a sink that records arrival - send. It
// returns the delays of n messages.
func calibrateProxy(oneWay time.Duration, rate float64, n int) ([]time.Duration, error) {
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	pn := newProxyNet()
	defer pn.close()
	addr, err := pn.add("calibration", sink.Addr().String(), oneWay)
	if err != nil {
		return nil, err
	}
	base := time.Now()
	delays := make([]time.Duration, 0, n)
	done := make(chan error, 1)
	go func() {
		c, err := sink.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		var b [8]byte
		for range n {
			if _, err := io.ReadFull(c, b[:]); err != nil {
				done <- err
				return
			}
			now := time.Since(base)
			delays = append(delays, now-time.Duration(binary.LittleEndian.Uint64(b[:])))
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var b [8]byte
	err = paced(rate, n, func(int) bool {
		binary.LittleEndian.PutUint64(b[:], uint64(time.Since(base)))
		_, err := c.Write(b[:])
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	select {
	case err := <-done:
		return delays, err
	case <-time.After(10*time.Second + 2*oneWay):
		return nil, fmt.Errorf("calibration: only %d of %d messages arrived", len(delays), n)
	}
}

// paced calls f(i) for i in [0, n) at rate calls per second: it makes every
// call that is due, then sleeps until the next one is (no timer per call;
// the Go timer's ~1 ms granularity makes calls come in small bursts, at the
// right average rate). It stops early, with an error, if f returns false.
func paced(rate float64, n int, f func(i int) bool) error {
	interval := float64(time.Second) / rate
	start := time.Now()
	for i := 0; i < n; {
		due := min(int(float64(time.Since(start))/interval)+1, n)
		for ; i < due; i++ {
			if !f(i) {
				return fmt.Errorf("paced call %d failed", i)
			}
		}
		if i < n {
			time.Sleep(time.Until(start.Add(time.Duration(float64(i) * interval))))
		}
	}
	return nil
}
