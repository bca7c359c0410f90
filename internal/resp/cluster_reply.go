package resp

import (
	"cmp"
	"net"
	"slices"
	"strconv"

	"github.com/geocache/geocache/internal/cluster"
)

// The replies of Redis Cluster's commands, built from a cluster.Map and
// the local node's id, in the shapes redis-server 7.0 gives them (field
// names, order and types; testdata/redis-7.0.15-cluster holds the real
// server's replies and cluster_reply_test.go compares). Each appends one
// reply to dst, as the encoders of reply.go do.
//
// Redis's view of a map: every member is a master; the primary of a slot
// (Owners[0]) is its master and the other owners its replicas. CLUSTER
// SLOTS says exactly that, range by range. CLUSTER NODES can give a node
// only one role, so every member is listed as a master with the slots it
// is primary of; CLUSTER SHARDS lists one shard per distinct owner list,
// so a member appears in several shards, as master in some and replica in
// others. There is no cluster bus: the bus port of CLUSTER NODES is the
// port of the member's replication address, ping and pong times are 0,
// replication offsets are 0 and every listed member is online (the map
// holds live members only).

// splitAddr splits a member's address into the endpoint and port Redis
// clients are given. A missing host (":7001") stays "": Redis gives "" for
// a node that does not know its IP. (Redis 7's null endpoint, "use the
// host you asked", would be the better meaning, but go-redis 9 fails to
// parse a CLUSTER SLOTS reply that holds one.) Members should announce a
// routable host.
func splitAddr(addr string) (host string, port int64) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		return h, 0
	}
	return h, n
}

func appendHexIDBulk(dst []byte, id uint32) []byte {
	dst = appendPrefix(dst, '$', cluster.HexIDLen)
	dst = cluster.AppendHexID(dst, id)
	return append(dst, '\r', '\n')
}

// appendClusterSlots appends the reply to CLUSTER SLOTS: one entry per run
// of slots with the same owners, [first, last, primary, other owners...],
// each node as [endpoint, port, hex id, metadata], the metadata an empty
// map (Redis puts the hostname there when one is configured).
func appendClusterSlots(dst []byte, m *cluster.Map, resp3 bool) []byte {
	// Each member's node entry is encoded once and copied into every range
	// it owns: a region of 3 has some 700 ranges.
	members := m.Members()
	var entries []byte
	ends := make([]int, len(members))
	for i, mb := range members {
		host, port := splitAddr(mb.Addr)
		entries = appendArray(entries, 4)
		entries = appendBulkString(entries, host)
		entries = appendInt(entries, port)
		entries = appendHexIDBulk(entries, mb.ID)
		entries = appendMap(entries, 0, resp3)
		ends[i] = len(entries)
	}
	entry := func(id uint32) []byte {
		i, _ := slices.BinarySearchFunc(members, id, func(mb cluster.Member, id uint32) int { return cmp.Compare(mb.ID, id) })
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		return entries[start:ends[i]]
	}
	ranges := m.Ranges()
	dst = appendArray(dst, len(ranges))
	for _, rg := range ranges {
		dst = appendArray(dst, 2+len(rg.Owners))
		dst = appendInt(dst, int64(rg.First))
		dst = appendInt(dst, int64(rg.Last))
		for _, o := range rg.Owners {
			dst = append(dst, entry(o.ID)...)
		}
	}
	return dst
}

// appendClusterShards appends the reply to CLUSTER SHARDS: one map per
// shard (a distinct owner list), {slots: [first, last, ...], nodes: [...]},
// each node a map of id, port, ip, endpoint, role ("master" for the
// primary, "replica" for the others), replication-offset and health
// ("loading" for a joining member, else "online"). A member without slots
// is a shard of its own with an empty slots list, as a Redis master
// without slots.
func appendClusterShards(dst []byte, m *cluster.Map, resp3 bool) []byte {
	shards := m.Shards()
	dst = appendArray(dst, len(shards))
	for _, sh := range shards {
		dst = appendMap(dst, 2, resp3)
		dst = appendBulkString(dst, "slots")
		dst = appendArray(dst, 2*len(sh.Slots))
		for _, sr := range sh.Slots {
			dst = appendInt(dst, int64(sr.First))
			dst = appendInt(dst, int64(sr.Last))
		}
		dst = appendBulkString(dst, "nodes")
		dst = appendArray(dst, len(sh.Owners))
		for k, o := range sh.Owners {
			host, port := splitAddr(o.Addr)
			role := "replica"
			if k == 0 {
				role = "master"
			}
			dst = appendMap(dst, 7, resp3)
			dst = appendBulkString(dst, "id")
			dst = appendHexIDBulk(dst, o.ID)
			dst = appendBulkString(dst, "port")
			dst = appendInt(dst, port)
			dst = appendBulkString(dst, "ip")
			dst = appendBulkString(dst, host)
			dst = appendBulkString(dst, "endpoint")
			dst = appendBulkString(dst, host)
			dst = appendBulkString(dst, "role")
			dst = appendBulkString(dst, role)
			dst = appendBulkString(dst, "replication-offset")
			dst = appendInt(dst, 0)
			dst = appendBulkString(dst, "health")
			if o.State == cluster.Joining {
				dst = appendBulkString(dst, "loading") // filling from the others
			} else {
				dst = appendBulkString(dst, "online")
			}
		}
	}
	return dst
}

// appendClusterNodes appends the reply to CLUSTER NODES: a text of one line
// per member, by id, each
//
//	<hex id> <ip>:<port>@<bus port> <flags> - 0 0 <epoch> connected <slots...>
//
// with flags "myself,master" for the node self and "master" for the
// others, and the runs of slots the member is primary of ("first-last", or
// "slot" for a run of one). epoch is the configuration epoch to announce
// for every member.
func appendClusterNodes(dst []byte, m *cluster.Map, self uint32, epoch uint64, resp3 bool) []byte {
	var text []byte
	for _, mb := range m.Members() {
		host, port := splitAddr(mb.Addr)
		_, busPort := splitAddr(mb.ReplAddr)
		text = cluster.AppendHexID(text, mb.ID)
		text = append(text, ' ')
		text = append(text, host...)
		text = append(text, ':')
		text = strconv.AppendInt(text, port, 10)
		text = append(text, '@')
		text = strconv.AppendInt(text, busPort, 10)
		if mb.ID == self {
			text = append(text, " myself,master"...)
		} else {
			text = append(text, " master"...)
		}
		text = append(text, " - 0 0 "...)
		text = strconv.AppendUint(text, epoch, 10)
		text = append(text, " connected"...)
		for _, sr := range m.PrimaryRanges(mb.ID) {
			text = append(text, ' ')
			text = strconv.AppendInt(text, int64(sr.First), 10)
			if sr.Last != sr.First {
				text = append(text, '-')
				text = strconv.AppendInt(text, int64(sr.Last), 10)
			}
		}
		text = append(text, '\n')
	}
	return appendVerbatim(dst, string(text), resp3)
}

// appendClusterInfo appends the reply to CLUSTER INFO: the fields of
// redis-server 7.0, in its order. Every slot of a map has an owner, so the
// state is always ok; cluster_size counts the members that are primary of
// some slot; epoch is announced as the current epoch and as this node's.
// The message counters of the cluster bus are 0: Redis lists a counter per
// message type only when it is not zero, and the totals always.
func appendClusterInfo(dst []byte, m *cluster.Map, epoch uint64, resp3 bool) []byte {
	text := make([]byte, 0, 512)
	field := func(name string, v uint64) {
		text = append(text, name...)
		text = append(text, ':')
		text = strconv.AppendUint(text, v, 10)
		text = append(text, '\r', '\n')
	}
	text = append(text, "cluster_state:ok\r\n"...)
	field("cluster_slots_assigned", cluster.Slots)
	field("cluster_slots_ok", cluster.Slots)
	field("cluster_slots_pfail", 0)
	field("cluster_slots_fail", 0)
	field("cluster_known_nodes", uint64(len(m.Members())))
	field("cluster_size", uint64(len(m.Primaries())))
	field("cluster_current_epoch", epoch)
	field("cluster_my_epoch", epoch)
	field("cluster_stats_messages_sent", 0)
	field("cluster_stats_messages_received", 0)
	field("total_cluster_links_buffer_limit_exceeded", 0)
	return appendVerbatim(dst, string(text), resp3)
}

// appendClusterMyID appends the reply to CLUSTER MYID: the node's 40-hex
// id.
func appendClusterMyID(dst []byte, self uint32) []byte { return appendHexIDBulk(dst, self) }

// appendClusterKeyslot appends the reply to CLUSTER KEYSLOT key.
func appendClusterKeyslot(dst []byte, key []byte) []byte {
	return appendInt(dst, int64(cluster.KeySlotBytes(key)))
}

// appendMoved appends the redirection "-MOVED <slot> <addr>": the slot is
// served at addr from now on. addr is a member's Addr; ":port" (no host)
// tells the client to keep the host it used.
func appendMoved(dst []byte, slot int, addr string) []byte {
	return appendRedirect(dst, "-MOVED ", slot, addr)
}

// appendAsk appends the redirection "-ASK <slot> <addr>": ask addr, after
// ASKING, for this request only.
func appendAsk(dst []byte, slot int, addr string) []byte {
	return appendRedirect(dst, "-ASK ", slot, addr)
}

func appendRedirect(dst []byte, kind string, slot int, addr string) []byte {
	dst = append(dst, kind...)
	dst = strconv.AppendInt(dst, int64(slot), 10)
	dst = append(dst, ' ')
	for i := 0; i < len(addr); i++ {
		c := addr[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return append(dst, '\r', '\n')
}
