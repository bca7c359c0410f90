package resp

import (
	"cmp"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/glob"
)

// Server commands: DBSIZE, FLUSHALL, INFO, CONFIG, COMMAND, WAIT.

func cmdDbsize(c *conn, _ [][]byte) {
	if c.primaryOnly() == nil {
		c.replyInt(int64(c.s.node.Stats().Entries))
		return
	}
	// Redirecting: the keys of this node's primary slots, counted by a
	// walk of the keyspace (O(n), where Redis's is O(1)).
	n := 0
	c.eachKey(func(string) { n++ })
	c.replyInt(int64(n))
}

// cmdFlushall removes every entry and tombstone on this node only. It is
// not replicated: a cache flush is a local operation (to flush every
// region, run it in every region).
func cmdFlushall(c *conn, args [][]byte) {
	if len(args) > 2 || (len(args) == 2 && !equalFold(args[1], "async") && !equalFold(args[1], "sync")) {
		c.replyError(errSyntax)
		return
	}
	c.s.node.FlushLocal()
	c.replyOK()
}

// cmdWait is WAIT numregions timeout: block until this connection's writes
// so far are applied in numregions other regions, or for timeout ms (0:
// until they are), and answer how many other regions have applied them.
func cmdWait(c *conn, args [][]byte) {
	n, ok := parseInt(args[1])
	if !ok {
		c.replyError(errNotInteger)
		return
	}
	ms, ok := parseInt(args[2])
	if !ok {
		c.replyError("ERR timeout is not an integer or out of range")
		return
	}
	if ms < 0 {
		c.replyError("ERR timeout is negative")
		return
	}
	if c.inExec {
		c.waitInExec(n)
		return
	}
	ctx, cancel := c.s.ctx, noCancel
	if ms > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(min(ms, int64(time.Duration(1<<62)/time.Millisecond)))*time.Millisecond)
	}
	defer cancel()
	got := 0
	c.block(ctx, func(ctx context.Context) {
		got, _ = c.sess.Wait(ctx, int(max(n, 0)))
	})
	c.replyInt(int64(got))
}

var (
	buildOnce sync.Once
	buildVer  string
)

// buildVersion is geocache's module version, as the binary records it.
func buildVersion() string {
	buildOnce.Do(func() {
		buildVer = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			buildVer = bi.Main.Version
		}
	})
	return buildVer
}

// connsByID returns the connected clients in the order they connected,
// without those CLIENT KILL closed (still leaving).
func (s *Server) connsByID() []*conn {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if !c.killed.Load() {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(cs, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	return cs
}

// regionView is what the node knows of the other regions.
type regionView struct {
	st geocache.Stats
	// regions is the number of other regions: one per region a peer
	// announced, and one per peer never reached (the conservative guess
	// the node makes for acknowledgements).
	regions int
}

func (s *Server) regionView() regionView {
	v := regionView{st: s.node.Stats()}
	seen := map[string]bool{v.st.Region: true}
	for _, p := range v.st.Peers {
		switch {
		case p.Region == "":
			v.regions++
		case !seen[p.Region]:
			seen[p.Region] = true
			v.regions++
		}
	}
	return v
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 2, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 2, 64) + "K"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// infoValue makes a value safe for an INFO line.
func infoValue(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', ',', ':', '=':
			return ' '
		}
		return r
	}, s)
}

// infoSections are the sections of a plain INFO (and INFO default);
// infoAllSections those of INFO all (and everything), as in Redis, where
// commandstats and latencystats are not in the default set either.
var (
	infoSections    = []string{"server", "clients", "memory", "persistence", "stats", "replication", "cpu", "errorstats", "cluster", "keyspace"}
	infoAllSections = append(slices.Clone(infoSections), "commandstats", "latencystats")
)

func cmdInfo(c *conn, args [][]byte) {
	want := map[string]bool{}
	if len(args) == 1 {
		for _, s := range infoSections {
			want[s] = true
		}
	}
	for _, a := range args[1:] {
		switch s := strings.ToLower(string(a)); s {
		case "default":
			for _, s := range infoSections {
				want[s] = true
			}
		case "all", "everything":
			for _, s := range infoAllSections {
				want[s] = true
			}
		default:
			want[s] = true
		}
	}
	c.replyVerbatim(c.s.info(want))
}

func (s *Server) info(want map[string]bool) string {
	base := s.stats() // CONFIG RESETSTAT's
	v := s.regionView()
	st := v.st
	var b strings.Builder
	section := func(name string) bool {
		if !want[strings.ToLower(name)] {
			return false
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		return true
	}
	kv := func(k, v string) { b.WriteString(k + ":" + v + "\r\n") }
	ki := func(k string, v int64) { kv(k, strconv.FormatInt(v, 10)) }
	ku := func(k string, v uint64) { kv(k, strconv.FormatUint(v, 10)) }
	if section("Server") {
		up := time.Since(s.started)
		kv("redis_version", redisVersion)
		kv("geocache_version", buildVersion())
		if m, _ := s.node.SlotMap(); m != nil {
			kv("redis_mode", "cluster")
		} else {
			kv("redis_mode", "standalone")
		}
		kv("os", runtime.GOOS+" "+runtime.GOARCH)
		kv("arch_bits", strconv.Itoa(strconv.IntSize))
		kv("go_version", runtime.Version())
		ki("process_id", int64(os.Getpid()))
		ki("uptime_in_seconds", int64(up/time.Second))
		ki("uptime_in_days", int64(up/(24*time.Hour)))
		kv("geocache_node", infoValue(st.Node))
		ki("geocache_node_id", int64(st.NodeID))
		kv("geocache_region", infoValue(st.Region))
	}
	if section("Clients") {
		ki("connected_clients", s.clients.Load())
		ki("maxclients", s.maxClients.Load())
		ki("blocked_clients", s.blocked.Load())
	}
	if section("Memory") {
		ki("used_memory", st.Bytes)
		kv("used_memory_human", human(st.Bytes))
		ki("maxmemory", s.maxMemory.Load())
		kv("maxmemory_human", human(s.maxMemory.Load()))
		kv("maxmemory_policy", "allkeys-lru")
		ki("geocache_max_entries", int64(s.nodeCfg.MaxEntries))
		ki("geocache_entries", int64(st.Entries))
		ki("geocache_tombstones", int64(st.Tombstones))
	}
	if section("Persistence") {
		// Nothing is persisted: a node starts empty and fills from its
		// peers. The fields clients wait on say nothing is loading.
		ki("loading", 0)
		ki("async_loading", 0)
		ki("rdb_bgsave_in_progress", 0)
		ki("aof_enabled", 0)
		ki("aof_rewrite_in_progress", 0)
	}
	if section("Stats") {
		// Counts since CONFIG RESETSTAT (resetstat.go), gauges as they are.
		ku("total_connections_received", since(s.connections.Load(), base.connections))
		ku("total_commands_processed", since(s.commands.Load(), base.commands))
		ku("rejected_connections", since(s.rejectedConns.Load(), base.rejectedConns))
		ku("geocache_rejected_requests", since(s.rejectedReqs.Load(), base.rejectedReqs))
		ku("total_error_replies", since(s.errors.Load(), base.errors))
		ku("acl_access_denied_auth", s.authFailures.Load())
		ki("geocache_client_buffer_bytes", s.bufBytes.Load())
		ku("geocache_tls_handshake_errors", since(s.tlsErrors.Load(), base.tlsErrors))
		ku("geocache_forwarded_commands", since(s.forwarded.Load(), base.forwarded))
		ku("geocache_forward_errors", since(s.fwdErrors.Load(), base.fwdErrors))
		ku("keyspace_hits", since(st.Hits, base.hits))
		ku("keyspace_misses", since(st.Misses, base.misses))
		ki("pubsub_channels", int64(s.hub.NumChannels()))
		ki("pubsub_patterns", int64(s.hub.NumPat()))
		ku("client_output_buffer_limit_disconnections", since(s.obufKills.Load(), base.obufKills))
		ki("geocache_pubsub_output_bytes", s.psBytes.Load())
		ku("evicted_keys", since(st.Evictions, base.evictions))
		ku("expired_keys", since(st.Expired, base.expired))
	}
	if section("Replication") {
		kv("role", "master")
		ki("connected_slaves", 0)
		ku("master_repl_offset", st.LastSeq)
		kv("geocache_region", infoValue(st.Region))
		ki("geocache_other_regions", int64(v.regions))
		ki("geocache_log_records", int64(st.LogRecords))
		ki("geocache_log_bytes", st.LogBytes)
		ku("geocache_last_seq", st.LastSeq)
		for i, p := range st.Peers {
			state := "disconnected"
			if p.Connected {
				state = "connected"
			}
			kv("peer"+strconv.Itoa(i), "addr="+infoValue(p.Addr)+",node="+infoValue(p.Node)+",region="+infoValue(p.Region)+
				",state="+state+",lag="+strconv.FormatUint(p.Lag, 10)+",backlog_bytes="+strconv.FormatInt(p.Backlog, 10)+
				",rtt_ms="+ms(p.RTT)+",offset_ms="+ms(p.Offset)+",full_syncs="+strconv.FormatUint(p.FullSyncs, 10)+
				",skipped="+strconv.FormatUint(p.Skipped, 10)+",protocol="+strconv.Itoa(p.Protocol)+",last_error="+infoValue(p.LastError))
		}
		for i, o := range st.Origins {
			state := "disconnected"
			if o.Connected {
				state = "connected"
			}
			kv("origin"+strconv.Itoa(i), "node="+infoValue(o.Node)+",region="+infoValue(o.Region)+",state="+state+
				",applied="+strconv.FormatUint(o.Applied, 10)+",ops="+strconv.FormatUint(o.Ops, 10)+
				",stale="+strconv.FormatUint(o.Stale, 10)+",full_syncs="+strconv.FormatUint(o.FullSyncs, 10))
		}
	}
	if section("CPU") {
		// The process's CPU time, as Redis's getrusage figures; geocache
		// has no main thread to report apart, nor children.
		user, sys := processCPU()
		kv("used_cpu_sys", cpuSeconds(sys))
		kv("used_cpu_user", cpuSeconds(user))
		kv("used_cpu_sys_children", "0.000000")
		kv("used_cpu_user_children", "0.000000")
	}
	if section("Errorstats") {
		codes, counts := s.errStats.snapshot()
		for i, code := range codes {
			kv("errorstat_"+code, "count="+strconv.FormatUint(counts[i], 10))
		}
	}
	if want["commandstats"] || want["latencystats"] {
		lat := s.latencySince(base)
		if section("Commandstats") {
			// As Redis 7: every command called, refused or failed, a
			// container's calls by subcommand (cmdstat_client|list).
			for _, cmd := range statEntries {
				l := lat[cmd.name]
				n := l.Count()
				rejected := since(s.rejectedCalls[cmd.id].Load(), base.rejectedCalls[cmd.id])
				failed := since(s.failedCalls[cmd.id].Load(), base.failedCalls[cmd.id])
				if n == 0 && rejected == 0 && failed == 0 {
					continue
				}
				us := float64(l.Sum) / float64(time.Microsecond)
				perCall := 0.0
				if n > 0 {
					perCall = us / float64(n)
				}
				kv("cmdstat_"+cmd.name, "calls="+strconv.FormatUint(n, 10)+",usec="+strconv.FormatInt(int64(us), 10)+
					",usec_per_call="+strconv.FormatFloat(perCall, 'f', 2, 64)+
					",rejected_calls="+strconv.FormatUint(rejected, 10)+",failed_calls="+strconv.FormatUint(failed, 10))
			}
		}
		if section("Latencystats") {
			usec := func(d time.Duration) string {
				return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 3, 64)
			}
			for _, cmd := range statEntries {
				if l, ok := lat[cmd.name]; ok {
					kv("latency_percentiles_usec_"+cmd.name, "p50="+usec(l.Quantile(0.5))+",p99="+usec(l.Quantile(0.99))+
						",p99.9="+usec(l.Quantile(0.999)))
				}
			}
		}
	}
	if section("Cluster") {
		enabled := int64(0)
		if m, _ := s.node.SlotMap(); m != nil {
			enabled = 1
		}
		ki("cluster_enabled", enabled)
	}
	if section("Keyspace") {
		// Redis's format; no line for an empty database. expires and
		// avg_ttl (ms) are exact up to 10,000 keys and estimated from a
		// sample of 10,000 above (see geocache.Node.Keyspace).
		if ks := s.node.Keyspace(); ks.Keys > 0 {
			kv("db0", "keys="+strconv.Itoa(ks.Keys)+",expires="+strconv.Itoa(ks.Expires)+
				",avg_ttl="+strconv.FormatInt(ks.AvgTTL.Milliseconds(), 10))
		}
	}
	return b.String()
}

// configParams are the parameters CONFIG GET reports, the live settings
// (settings.go) as they are now. requirepass is never revealed: it reads
// "(hidden)" when a password is set (Redis shows the password itself).
func (s *Server) configParams() [][2]string {
	itoa := strconv.Itoa
	pass := ""
	if s.passwordSet() {
		pass = "(hidden)"
	}
	return append([][2]string{
		{"maxmemory", strconv.FormatInt(s.maxMemory.Load(), 10)},
		{"maxmemory-policy", "allkeys-lru"},
		{"maxclients", strconv.FormatInt(s.maxClients.Load(), 10)},
		{"timeout", strconv.FormatInt(int64(s.idle()/time.Second), 10)},
		{"requirepass", pass},
		{"proto-max-bulk-len", itoa(s.cfg.MaxBulkBytes)},
		{"client-query-buffer-limit", itoa(s.cfg.MaxRequestBytes)},
		{"databases", "1"},
		{"save", ""},
		{"appendonly", "no"},
		{"client-output-buffer-limit", "normal 0 0 0 slave 0 0 0 pubsub " + limitText(s.psHard.Load()) + " " +
			limitText(s.psSoft.Load()) + " " + strconv.FormatInt(s.psSoftTime.Load()/int64(time.Second), 10)},
		{"geocache-max-args", itoa(s.cfg.MaxArgs)},
		{"geocache-unauth-limit", itoa(s.cfg.UnauthLimit)},
		{"protected-mode", yesNo(s.cfg.ProtectedMode)},
		{"geocache-auth-timeout", strconv.FormatInt(s.cfg.AuthTimeout.Milliseconds(), 10)},
		{"geocache-request-timeout", strconv.FormatInt(s.cfg.RequestTimeout.Milliseconds(), 10)},
		{"geocache-max-client-buffer", strconv.FormatInt(s.cfg.MaxClientBuffer, 10)},
		{"geocache-max-value-bytes", itoa(s.nodeCfg.MaxValueBytes)},
		{"geocache-default-ttl", strconv.FormatInt(int64(s.nodeCfg.DefaultTTL/time.Millisecond), 10)},
		{"geocache-region", s.nodeCfg.Region},
		{"notify-keyspace-events", s.node.KeyspaceEvents()},
	}, s.slowlog.params()...)
}

var configHelp = []string{
	"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GET <pattern>",
	"    Return parameters matching the glob-like <pattern> and their values.",
	"SET <directive> <value> [<directive> <value> ...]",
	"    Set the configuration <directive> to <value>: maxmemory, requirepass,",
	"    maxclients, timeout, client-output-buffer-limit (pubsub), slowlog-log-slower-than,",
	"    slowlog-max-len, notify-keyspace-events; the others are fixed when geocache starts.",
	"RESETSTAT",
	"    Reset statistics reported by the INFO command.",
	"HELP",
	"    Print this help.",
}

func cmdConfig(c *conn, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "get"):
		if len(args) < 3 {
			c.wrongArity("config|get")
			return
		}
		var hits [][2]string
		for _, p := range c.s.configParams() {
			for _, pat := range args[2:] {
				if glob.Match(pat, p[0], true) {
					hits = append(hits, p)
					break
				}
			}
		}
		c.replyMap(len(hits))
		for _, h := range hits {
			c.replyBulkString(h[0])
			c.replyBulkString(h[1])
		}
	case equalFold(sub, "set"):
		c.configSet(args[2:])
	case equalFold(sub, "resetstat"):
		if len(args) != 2 {
			c.wrongArity("config|resetstat")
			return
		}
		c.s.resetStats()
		c.replyOK()
	case equalFold(sub, "rewrite"):
		c.replyError("ERR CONFIG " + strings.ToUpper(string(sub)) + " is not supported: geocache's settings are fixed when it starts (see 'geocache serve -h')")
	case equalFold(sub, "help"):
		c.helpReply(configHelp)
	default:
		c.unknownSubcommand("config", sub)
	}
}

var commandHelp = []string{
	"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"(no subcommand)",
	"    Return details about all commands.",
	"COUNT",
	"    Return the total number of commands in this server.",
	"LIST",
	"    Return a list of all commands in this server.",
	"INFO [<command-name> ...]",
	"    Return details about the given commands, or all of them.",
	"DOCS [<command-name> ...]",
	"    Return documentation details about the given commands, or all of them.",
	"HELP",
	"    Print this help.",
}

func cmdCommand(c *conn, args [][]byte) {
	if len(args) == 1 {
		c.replyArray(len(commands))
		for _, cmd := range commands {
			c.commandInfo(cmd)
		}
		return
	}
	sub := args[1]
	switch {
	case equalFold(sub, "count"):
		if len(args) != 2 {
			c.wrongArity("command|count")
			return
		}
		c.replyInt(int64(len(commands)))
	case equalFold(sub, "list"):
		c.replyArray(len(commands))
		for _, cmd := range commands {
			c.replyBulkString(cmd.name)
		}
	case equalFold(sub, "info"):
		if len(args) == 2 {
			c.replyArray(len(commands))
			for _, cmd := range commands {
				c.commandInfo(cmd)
			}
			return
		}
		c.replyArray(len(args) - 2)
		for _, name := range args[2:] {
			if cmd := lookupCommand(name); cmd != nil {
				c.commandInfo(cmd)
			} else {
				c.replyNullArray()
			}
		}
	case equalFold(sub, "docs"):
		var docs []*command
		if len(args) == 2 {
			docs = commands
		}
		for _, name := range args[2:] {
			if cmd := lookupCommand(name); cmd != nil {
				docs = append(docs, cmd)
			}
		}
		c.replyMap(len(docs))
		for _, cmd := range docs {
			c.replyBulkString(cmd.name)
			c.replyMap(3)
			c.replyBulkString("summary")
			c.replyBulkString(cmd.summary)
			c.replyBulkString("since")
			c.replyBulkString(cmd.since)
			c.replyBulkString("group")
			c.replyBulkString(cmd.group)
		}
	case equalFold(sub, "help"):
		c.helpReply(commandHelp)
	default:
		c.unknownSubcommand("command", sub)
	}
}

// commandInfo writes a command's COMMAND entry as Redis 7 does: name,
// arity, flags, first key, last key, step, ACL categories, tips, key specs,
// subcommands (the last four empty).
func (c *conn) commandInfo(cmd *command) {
	c.replyArray(10)
	c.replyBulkString(cmd.name)
	c.replyInt(int64(cmd.arity))
	c.replySet(len(cmd.flags))
	for _, f := range cmd.flags {
		c.replySimple(f)
	}
	c.replyInt(int64(cmd.firstKey))
	c.replyInt(int64(cmd.lastKey))
	c.replyInt(int64(cmd.step))
	c.replySet(0)
	c.replySet(0)
	c.replyArray(0)
	c.replyArray(0)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
