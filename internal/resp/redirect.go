package resp

import "github.com/geocache/geocache/internal/cluster"

// Redirection as a Redis Cluster node does it (Config.Redirect).
//
// By default every node of a region holds every key and serves whatever
// it is asked: plain clients may use any node, and cluster-aware clients,
// which send each key to its slot's primary, spread the load. With
// Redirect (serve's --cluster-redirect, whose nodes keep only their own
// slots: GossipConfig.SlotsOnly), a node answers as a Redis Cluster node
// does, for regions whose clients are all cluster-aware: a command whose keys
// are in a slot this node does not own is answered "-MOVED <slot>
// <host>:<port>" (the slot's primary), which makes the client reload the
// map; a command (or a transaction, at EXEC) whose keys are in several
// slots is answered "-CROSSSLOT Keys in request don't hash to the same
// slot", even if this node owns them all. Every owner of a slot serves it
// (reads and writes), not only its primary. A node joining or leaving its
// region owns no slot, so it redirects every keyed command: cluster-aware
// clients follow a node's slots as it hands them over. Key-less commands
// (PUBLISH, ...) are served. A command on a slot this node owns but has
// just gained and is still filling from its peers (Node.ColdSlot) is
// answered "-ASK <slot> <host>:<port>", naming a co-owner that held the
// slot (inside MULTI too, dooming the transaction), unless it follows
// ASKING. KEYS, SCAN, RANDOMKEY and DBSIZE list only
// the keys of the slots this node is the primary of (primaryOnly). The checks run where Redis runs them (processCommand): after
// authentication, before the subscribed-mode check and before queuing in
// MULTI; a command refused while queuing dooms the transaction, and EXEC
// refused discards it. Replies and their order match redis-server 7.0.15
// with cluster-enabled (TestRedirectAsRedisCluster).

const errCrossSlot = "CROSSSLOT Keys in request don't hash to the same slot"

// routed reports whether the redirection checks cmd: a command with keys,
// EXEC (its queued commands' keys), and the containers with a key
// subcommand (OBJECT, MEMORY USAGE).
func routed(cmd *command) bool {
	return cmd.firstKey > 0 || cmd.name == "exec" || cmd.name == "object" || cmd.name == "memory" || cmd.name == "geocache"
}

// route returns true if this node serves the command. Otherwise it has
// answered -CROSSSLOT, -MOVED or -ASK and doomed (or, for EXEC, discarded)
// the open transaction.
func (c *conn) route(cmd *command, args [][]byte, asking bool) bool {
	m, _ := c.s.node.SlotMap()
	if m == nil {
		return true
	}
	if c.forwards() {
		return c.forwardRoute(m, cmd, args)
	}
	slot, cross := -1, false
	see := func(cmd *command, args [][]byte) {
		c.keyBuf = routedKeys(c.keyBuf[:0], cmd, args)
		for _, k := range c.keyBuf {
			s := cluster.KeySlotBytes(k)
			if slot >= 0 && s != slot {
				cross = true
			}
			slot = s
		}
		clear(c.keyBuf) // do not pin the request's buffer
	}
	if cmd.name == "exec" {
		if c.tx == nil {
			return true
		}
		for _, q := range c.tx.cmds {
			see(q.cmd, q.args)
		}
	} else {
		see(cmd, args)
	}
	if slot < 0 {
		return true
	}
	ask := ""
	if !cross && m.Owns(c.s.nodeCfg.NodeID, slot) {
		// A cold slot (gained, still filling from the peers) is served by
		// a co-owner that held it, for this request only: -ASK, as Redis
		// answers for a key of a slot being migrated away (inside MULTI
		// too, which dooms the transaction, as Redis does). Not after
		// ASKING (never back and forth), and not at EXEC (its commands
		// were checked as they were queued).
		addr, cold := c.s.cfg.coldSlot(slot)
		if !cold || addr == "" || asking || cmd.name == "exec" {
			return true
		}
		ask = addr
	}
	c.s.rejectedCalls[cmd.statsOf(args).id].Add(1)
	if cmd.name == "exec" {
		c.tx, c.watched = nil, nil
	} else {
		c.failTx()
	}
	switch { // the error's code is its first word
	case cross:
		c.replyError(errCrossSlot)
	case ask != "":
		c.countError("ASK ")
		c.out = appendAsk(c.out, slot, ask)
	default:
		c.countError("MOVED ")
		c.out = appendMoved(c.out, slot, m.Primary(slot).Addr)
	}
	return false
}

// primaryOnly returns, when the server redirects, a test of whether this
// node is the primary of a key's slot, and nil otherwise: a redirecting
// node lists (KEYS, SCAN, RANDOMKEY, DBSIZE) only the keys of the slots it
// is the primary of, as a Redis Cluster master lists its own, so that a
// client that walks every master sees each key once.
func (c *conn) primaryOnly() func(key string) bool {
	if !c.s.cfg.Redirect && !c.s.cfg.Forward {
		return nil
	}
	m, _ := c.s.node.SlotMap()
	if m == nil {
		return nil
	}
	self := c.s.nodeCfg.NodeID
	return func(key string) bool { return m.Primary(cluster.KeySlot(key)).ID == self }
}

// routedKeys appends the keys of a call of cmd: its key positions, or the
// key of OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT, MEMORY USAGE and GEOCACHE
// VERSION.
func routedKeys(dst [][]byte, cmd *command, args [][]byte) [][]byte {
	switch cmd.name {
	case "object":
		if len(args) == 3 && !equalFold(args[1], "help") {
			return append(dst, args[2])
		}
		return dst
	case "memory":
		if len(args) >= 3 && equalFold(args[1], "usage") {
			return append(dst, args[2])
		}
		return dst
	case "geocache":
		if len(args) == 3 && equalFold(args[1], "version") {
			return append(dst, args[2])
		}
		return dst
	}
	return commandKeys(dst, cmd, args)
}
