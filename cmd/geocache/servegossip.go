package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/geocache/geocache"
)

// validateGossip checks the flags of a region of several nodes and reads
// the gossip key: gossip beyond loopback needs --gossip-key (or
// --insecure), as replication needs TLS.
func (c *serveConfig) validateGossip() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
	}
	if c.gossipAddr == "" {
		for _, f := range []struct {
			name string
			set  bool
		}{{"--join", len(c.join) > 0}, {"--gossip-key", c.gossipKeyFile != ""}, {"--gossip-advertise-addr", c.gossipAdvertise != ""}, {"--copies", c.copies != 0}, {"--announce-addr", c.announceAddr != ""}, {"--cluster-redirect", c.clusterRedirect}, {"--cluster-forward", c.clusterForward}, {"--peer-announce-addr", c.peerAnnounceAddr != ""}} {
			if f.set {
				return bad("%s needs --gossip-addr", f.name)
			}
		}
		return nil
	}
	if c.clusterRedirect && c.clusterForward {
		return bad("--cluster-redirect and --cluster-forward exclude each other")
	}
	addrs := []struct{ flag, addr string }{{"--gossip-addr", c.gossipAddr}}
	if c.gossipAdvertise != "" {
		addrs = append(addrs, struct{ flag, addr string }{"--gossip-advertise-addr", c.gossipAdvertise})
	}
	for _, j := range c.join {
		addrs = append(addrs, struct{ flag, addr string }{"--join", j})
	}
	beyond := ""
	for _, a := range addrs {
		if err := checkAddr(a.addr, a.flag == "--join"); err != nil {
			return bad("%s: %v", a.flag, err)
		}
		if !isLoopback(a.addr) && beyond == "" {
			beyond = a.addr
		}
	}
	if c.announceAddr != "" {
		if err := checkAddr(c.announceAddr, true); err != nil {
			return bad("--announce-addr: %v", err)
		}
	} else if isWildcard(c.addr) {
		return bad("--addr %s is not an address clients can reach: give --announce-addr, the address cluster-aware clients are sent to", c.addr)
	}
	if c.peerAddr == "" {
		return bad("--gossip-addr needs --peer-addr: the region's nodes replicate to each other")
	}
	if c.peerAnnounceAddr != "" {
		if err := checkAddr(c.peerAnnounceAddr, true); err != nil {
			return bad("--peer-announce-addr: %v", err)
		}
	} else if isWildcard(c.peerAddr) {
		return bad("--peer-addr %s is not an address the region's other nodes can reach: give --peer-announce-addr, the replication address they dial", c.peerAddr)
	}
	if c.gossipKeyFile != "" {
		b, err := os.ReadFile(c.gossipKeyFile)
		if err != nil {
			return bad("--gossip-key: %v", err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			return bad("--gossip-key %s: want the base64 of 16, 24 or 32 bytes ('geocache cert gossip-key' makes one)", c.gossipKeyFile)
		}
		c.gossipKey = key
	} else if beyond != "" && !c.insecure {
		return bad("gossip address %s is beyond loopback, and gossip without a key lets anyone who reaches it join the region or declare its nodes dead: "+
			"give every node of the region --gossip-key FILE (create it with 'geocache cert gossip-key --dir DIR'; see docs/operations.md), "+
			"or pass --insecure on a network you trust", beyond)
	}
	return nil
}

// gossipConfig is the node's GossipConfig as the flags set it (nil without
// --gossip-addr).
func (c *serveConfig) gossipConfig() *geocache.GossipConfig {
	if c.gossipAddr == "" {
		return nil
	}
	announce := c.announceAddr
	if announce == "" {
		announce = c.addr
	}
	return &geocache.GossipConfig{
		Addr: c.gossipAddr, AdvertiseAddr: c.gossipAdvertise, Join: c.join,
		Key: c.gossipKey, Copies: c.copies, ClientAddr: announce, ReplAddr: c.peerAnnounceAddr,
		// Redirecting and forwarding nodes are only asked for their own
		// slots: they keep only those, and the region holds Nodes/Copies
		// times one node.
		SlotsOnly: c.clusterRedirect || c.clusterForward,
	}
}

// isWildcard reports whether addr listens on every interface (no host, or
// an unspecified address): others cannot dial it.
func isWildcard(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.IsUnspecified()
}
