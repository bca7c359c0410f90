package resp

import "strings"

// Redis Cluster's commands, answered from the node's slot map (see
// geocache.GossipConfig). A node without gossip is a region of one node and
// answers them as a Redis without cluster support does. Every node of a
// region holds every key today, so a node serves any key it is asked for
// (unless Config.Redirect: redirect.go), and cluster-aware clients, which
// route each key to the slot's primary from CLUSTER SLOTS, spread the load
// over the region.

const errClusterDisabled = "ERR This instance has cluster support disabled"

func cmdCluster(c *conn, args [][]byte) {
	m, epoch := c.s.node.SlotMap()
	if m == nil {
		c.replyError(errClusterDisabled)
		return
	}
	sub := args[1]
	arity := func(n int) bool {
		if len(args) != n {
			c.wrongArity("cluster|" + strings.ToLower(string(sub)))
			return false
		}
		return true
	}
	self := c.s.node.Config().NodeID
	switch {
	case equalFold(sub, "slots"):
		if arity(2) {
			c.out = appendClusterSlots(c.out, m, c.resp3)
		}
	case equalFold(sub, "shards"):
		if arity(2) {
			c.out = appendClusterShards(c.out, m, c.resp3)
		}
	case equalFold(sub, "nodes"):
		if arity(2) {
			c.out = appendClusterNodes(c.out, m, self, epoch, c.resp3)
		}
	case equalFold(sub, "info"):
		if arity(2) {
			c.out = appendClusterInfo(c.out, m, epoch, c.resp3)
		}
	case equalFold(sub, "myid"):
		if arity(2) {
			c.out = appendClusterMyID(c.out, self)
		}
	case equalFold(sub, "keyslot"):
		if arity(3) {
			c.out = appendClusterKeyslot(c.out, args[2])
		}
	case equalFold(sub, "help"):
		if arity(2) {
			lines := []string{
				"CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
				"INFO", "    Return information about the cluster.",
				"KEYSLOT <key>", "    Return the hash slot for <key>.",
				"MYID", "    Return the node id.",
				"NODES", "    Return cluster configuration seen by node. Output format:",
				"    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
				"SHARDS", "    Return information about slot range mappings and the nodes associated with them.",
				"SLOTS", "    Return information about slots range mappings. Each range is made of:",
				"    start, end, master and replicas IP addresses, ports and ids",
				"HELP", "    Print this help.",
			}
			c.replyArray(len(lines))
			for _, l := range lines {
				c.replySimple(l)
			}
		}
	default:
		c.unknownSubcommand("cluster", sub)
	}
}

// cmdClusterOK answers ASKING, READONLY and READWRITE: every node of a
// region serves reads and writes of every slot, so they change nothing.
// cmdAsking is ASKING: the next command of the connection is served even
// if its slot is cold here (route).
func cmdAsking(c *conn, args [][]byte) {
	cmdClusterOK(c, args)
	c.asking = c.s.cfg.Redirect && c.errs == c.errMark
}

func cmdClusterOK(c *conn, args [][]byte) {
	if m, _ := c.s.node.SlotMap(); m == nil {
		c.replyError(errClusterDisabled)
		return
	}
	c.replyOK()
}
