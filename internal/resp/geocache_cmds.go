package resp

import (
	"strings"
	"time"

	"github.com/geocache/geocache"
)

// GEOCACHE <subcommand>: geocache's own commands.

var geocacheHelp = []string{
	"GEOCACHE <subcommand> [<arg> ...]. Subcommands are:",
	"REGIONS",
	"    Return this node and every replication peer: region, node, link state (connected, disconnected,",
	"    never connected) and since when, lag in writes, backlog bytes, RTT, and while down why (last error).",
	"ACK [LOCAL|QUORUM|ALL [<timeout-ms>]]",
	"    Return, or set, how far this connection's writes travel before they are answered:",
	"    LOCAL (applied here), QUORUM (a majority of regions), ALL (every region).",
	"    A write not acknowledged within the timeout (default 5000 ms) answers -TIMEOUT; it stays applied.",
	"REDIRECT",
	"    On a node that forwards commands to the owners of their keys (--cluster-forward), answer as a",
	"    Redis Cluster node instead, on this connection: -MOVED or -ASK for keys this node does not keep.",
	"VERSION <key>",
	"    Return the version of key's entry here: [hlc, origin node id, expire-at ms or -1];",
	"    for a delete this node remembers, [hlc, origin node id, -1, \"deleted\"]; else nil.",
	"HELP",
	"    Print this help.",
}

func cmdGeocache(c *conn, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "regions"):
		if len(args) != 2 {
			c.wrongArity("geocache|regions")
			return
		}
		c.regions()
	case equalFold(sub, "ack"):
		if len(args) > 4 {
			c.wrongArity("geocache|ack")
			return
		}
		c.ack(args[2:])
	case equalFold(sub, "redirect"):
		if len(args) != 2 {
			c.wrongArity("geocache|redirect")
			return
		}
		c.redirect = true
		c.replyOK()
	case equalFold(sub, "version"):
		if len(args) != 3 {
			c.wrongArity("geocache|version")
			return
		}
		key := peekKey(args[2])
		it, err := c.s.node.Lookup(key)
		if err != nil {
			// A remembered delete (a tombstone) has a version too: the
			// extra fourth element "deleted" tells it from an entry, so
			// that a consistency checker can compare what every node holds
			// (internal/chaos). A key with neither is nil.
			if hlc, origin, ok := c.s.node.Tombstone(key); ok {
				c.replyArray(4)
				c.replyInt(int64(hlc))
				c.replyInt(int64(origin))
				c.replyInt(-1)
				c.replyBulkString("deleted")
				return
			}
			c.replyNullArray()
			return
		}
		exp := int64(-1)
		if !it.ExpireAt.IsZero() {
			exp = it.ExpireAt.UnixMilli()
		}
		c.replyArray(3)
		c.replyInt(int64(it.HLC))
		c.replyInt(int64(it.Origin))
		c.replyInt(exp)
	case equalFold(sub, "help"):
		c.helpReply(geocacheHelp)
	default:
		c.unknownSubcommand("geocache", sub)
	}
}

func (c *conn) ack(args [][]byte) {
	if len(args) == 0 {
		c.replySimple(strings.ToUpper(c.sess.Ack().String()))
		return
	}
	var level geocache.Ack
	switch {
	case equalFold(args[0], "local"):
		level = geocache.Local
	case equalFold(args[0], "quorum"):
		level = geocache.Quorum
	case equalFold(args[0], "all"):
		level = geocache.All
	default:
		c.replyError("ERR unknown acknowledgement level '" + string(truncate(args[0], 128)) + "': LOCAL, QUORUM or ALL")
		return
	}
	timeout := DefaultAckTimeout
	if len(args) == 2 {
		n, ok := parseInt(args[1])
		if !ok || n <= 0 || n > int64(24*time.Hour/time.Millisecond) {
			c.replyError("ERR timeout must be a positive number of milliseconds, at most a day")
			return
		}
		timeout = time.Duration(n) * time.Millisecond
	}
	c.sess.SetAck(level)
	c.ackTimeout = timeout
	c.replyOK()
}

// regions writes GEOCACHE REGIONS: this node first, then one entry per
// replication peer. A peer never reached has state "never connected",
// region and node "(unknown)" (no valid name has parentheses), and since_ms
// the time this node started trying. last_error, reason and last_error_ms
// describe why a link is down; they are empty (-1) while it is up, so an
// error never outlives the outage it explains.
func (c *conn) regions() {
	v := c.s.regionView()
	st := v.st
	c.replyArray(1 + len(st.Peers))
	c.replyMap(7)
	c.replyBulkString("region")
	c.replyBulkString(st.Region)
	c.replyBulkString("node")
	c.replyBulkString(st.Node)
	c.replyBulkString("node_id")
	c.replyInt(int64(st.NodeID))
	c.replyBulkString("state")
	c.replyBulkString("self")
	c.replyBulkString("relays_sent")
	c.replyInt(int64(st.RelaysSent))
	c.replyBulkString("relays_applied")
	c.replyInt(int64(st.RelaysApplied))
	c.replyBulkString("relays_missed")
	c.replyInt(int64(st.RelaysMissed))
	for _, p := range st.Peers {
		state := "disconnected"
		switch {
		case p.Connected:
			state = "connected"
		case !p.EverConnected:
			state = "never connected"
		}
		region, node := p.Region, p.Node
		if region == "" {
			region = "(unknown)"
		}
		if node == "" {
			node = "(unknown)"
		}
		lastErr, reason, errMS := "", "", int64(-1)
		if !p.Connected && p.LastError != "" {
			lastErr, reason, errMS = p.LastError, p.Reason, p.LastErrorAt.UnixMilli()
		}
		since := int64(-1)
		if !p.Since.IsZero() {
			since = p.Since.UnixMilli()
		}
		c.replyMap(16)
		c.replyBulkString("region")
		c.replyBulkString(region)
		c.replyBulkString("node")
		c.replyBulkString(node)
		c.replyBulkString("addr")
		c.replyBulkString(p.Addr)
		c.replyBulkString("state")
		c.replyBulkString(state)
		c.replyBulkString("since_ms")
		c.replyInt(since)
		c.replyBulkString("lag")
		c.replyInt(int64(p.Lag))
		c.replyBulkString("backlog_bytes")
		c.replyInt(p.Backlog)
		c.replyBulkString("rtt_us")
		c.replyInt(p.RTT.Microseconds())
		c.replyBulkString("offset_us")
		c.replyInt(p.Offset.Microseconds())
		c.replyBulkString("full_syncs")
		c.replyInt(int64(p.FullSyncs))
		c.replyBulkString("skipped")
		c.replyInt(int64(p.Skipped))
		c.replyBulkString("stand_ins")
		c.replyInt(int64(p.StandIns))
		c.replyBulkString("protocol")
		c.replyInt(int64(p.Protocol))
		c.replyBulkString("last_error")
		c.replyBulkString(lastErr)
		c.replyBulkString("reason")
		c.replyBulkString(reason)
		c.replyBulkString("last_error_ms")
		c.replyInt(errMS)
	}
}
