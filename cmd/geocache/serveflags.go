package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/resp"
)

// envPrefix prefixes the environment variable of every serve flag:
// --max-memory is GEOCACHE_MAX_MEMORY.
const envPrefix = "GEOCACHE_"

// errUsage marks a bad command line or environment: exit status 2.
var errUsage = errors.New("usage error")

// serveConfig is what geocache serve runs with, after flags and environment.
type serveConfig struct {
	region, name, cluster string
	node                  uint32
	addr, peerAddr        string
	peers                 []string
	maxMemory             int64
	maxEntries            int
	defaultTTL            time.Duration
	keyspaceEvents        string
	requirePass           string
	maxClients            int
	idleTimeout           time.Duration
	adminAddr             string
	logLevel              slog.Level
	logFormat             string
	tombstoneHorizon      time.Duration
	antiEntropyInterval   time.Duration
	maxTombstones         int
	maxValueSize          int64
	replLogSize           int64
	largeWindow           int64
	readyRequiresPeers    bool

	// TLS and trust (replication)
	tlsCert, tlsKey, tlsCA string
	insecure               bool

	// A region of several nodes (gossip)
	gossipAddr, gossipAdvertise string
	join                        []string
	gossipKeyFile               string
	gossipKey                   []byte // read from gossipKeyFile by validate
	copies                      int
	announceAddr                string
	peerAnnounceAddr            string
	clusterRedirect             bool
	clusterForward              bool

	// RESP protection
	protectedMode   string        // "yes", "no", or "" for yes
	authTimeout     time.Duration // 0: resp.DefaultAuthTimeout
	requestTimeout  time.Duration // 0: resp.DefaultRequestTimeout
	maxClientBuffer int64
	tlsAddr         string
	tlsClientAuth   bool

	// Pub/sub
	pubsubLimit obufLimit // --client-output-buffer-limit-pubsub; zero: resp's defaults

	unknownEnv []string // GEOCACHE_* variables that name no flag (warned about)

	hooks testHooks // set by serve from GEOCACHE_TEST_* variables, not by flags (testhooks.go)
}

// Defaults of geocache serve. A single node needs no flags. The node's
// own defaults are geocache's (Config.validate); the help quotes them.
const (
	defaultAddr       = "127.0.0.1:6380"
	defaultPeerAddr   = "127.0.0.1:7380"
	defaultMaxClients = 10000
)

// newServeFlags returns the flag set of geocache serve bound to c, which
// holds the defaults.
func newServeFlags(c *serveConfig) *flag.FlagSet {
	*c = serveConfig{
		region: "local", node: 1, addr: defaultAddr,
		maxMemory: geocache.DefaultMaxBytes, maxClients: defaultMaxClients,
		logLevel: slog.LevelInfo, logFormat: "text",
	}
	fs := flag.NewFlagSet("geocache serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed by serveCmd
	fs.Var(nameValue{&c.region, false}, "region", "this node's region, e.g. eu-west")
	fs.Var((*uint32Value)(&c.node), "node", "numeric node id, 1 or more; must be unique in the cluster and stable for the node")
	fs.Var(nameValue{&c.name, true}, "name", `node name in logs and metrics (default "<region>-<node>")`)
	fs.Var(nameValue{&c.cluster, true}, "cluster", `cluster name; nodes of different clusters refuse to replicate (default "geocache")`)
	fs.StringVar(&c.addr, "addr", c.addr, "RESP (Redis protocol) listen address")
	fs.StringVar(&c.peerAddr, "peer-addr", "", "replication listen address (default "+defaultPeerAddr+" with --peers or --gossip-addr; otherwise the node does not listen unless this is set)")
	fs.Var((*listValue)(&c.peers), "peers", "comma-separated replication addresses of the other nodes, in every region")
	fs.Var((*sizeValue)(&c.maxMemory), "max-memory", "memory budget of the entries: bytes, or with a unit B, KB, MB, GB, TB (powers of 1024; KiB, MiB, GiB, TiB too)")
	fs.IntVar(&c.maxEntries, "max-entries", 0, "bound on the number of entries (0: none)")
	fs.DurationVar(&c.defaultTTL, "default-ttl", 0, "time to live of writes without one, e.g. 10m (0: never expire)")
	fs.StringVar(&c.keyspaceEvents, "notify-keyspace-events", "", "keyspace notifications published to this node's subscribers, as Redis's setting, e.g. KEA or Egx (default none; CONFIG SET changes it)")
	fs.StringVar(&c.requirePass, "requirepass", "", "password clients must AUTH with (prefer the environment variable: flags show in ps)")
	fs.IntVar(&c.maxClients, "max-clients", c.maxClients, "most RESP connections open at once; more are refused")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 0, "close RESP connections idle this long (0: never)")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "HTTP listen address of /healthz, /readyz and /metrics, e.g. 127.0.0.1:9380 (empty: off)")
	fs.Var((*levelValue)(&c.logLevel), "log-level", "log level: debug, info, warn or error")
	fs.Var(enumValue{&c.logFormat, []string{"text", "json"}}, "log-format", "log format: text or json")
	fs.DurationVar(&c.tombstoneHorizon, "tombstone-horizon", 0, "how long deletes and expiries are remembered exactly; a peer unreachable for longer is fully resynced (0: "+shortDuration(geocache.DefaultTombstoneHorizon)+")")
	fs.DurationVar(&c.antiEntropyInterval, "anti-entropy-interval", 0, "period of the anti-entropy rounds on every link, at most half the tombstone horizon (0: the smaller of 10m and a quarter of the horizon)")
	fs.IntVar(&c.maxTombstones, "max-tombstones", 0, "bound on the deletes remembered exactly, and on the expiries (0: "+strconv.Itoa(geocache.DefaultMaxTombstones)+" each)")
	fs.Var((*sizeValue)(&c.maxValueSize), "max-value-size", "largest value a write may carry, and Redis's proto-max-bulk-len: a longer argument is a protocol error; at most "+formatSize(geocache.MaxValueBytesLimit)+", as Redis (default "+formatSize(geocache.DefaultMaxValueBytes)+"; a value needs --max-memory well above it)")
	fs.Var((*sizeValue)(&c.largeWindow), "large-value-window", "bytes of a large value (over 256 KiB, sent in parts) in flight on each replication link: it crosses at most this much per round trip, and writes that pass it may queue behind this much (default "+formatSize(geocache.DefaultLargeValueWindow)+"; raise toward bandwidth × round trip on long, fast links)")
	fs.Var((*sizeValue)(&c.replLogSize), "replication-log-size", "bound of the log of this node's writes kept for peers that are behind; a peer further behind gets a full sync (default "+formatSize(geocache.DefaultReplicationLogBytes)+" or 4 × --max-value-size, whichever is larger; a node without --peers keeps none)")
	fs.BoolVar(&c.readyRequiresPeers, "ready-requires-peers", false, "make /readyz answer 503 while no peer of some region is reachable (off: a region serves on its own)")
	// TLS and trust (replication)
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate of this node, from the cluster's CA, to serve and dial replication links over mutual TLS 1.3 (reloaded on SIGHUP and when the file changes; 'geocache cert node' makes one)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM certificate of the cluster's CA: peers must present a certificate it signed")
	fs.BoolVar(&c.insecure, "insecure", false, "allow plaintext replication with peers beyond loopback (anyone who reaches --peer-addr can read and write every key)")
	// A region of several nodes (gossip)
	fs.StringVar(&c.gossipAddr, "gossip-addr", "", "gossip listen address (UDP and TCP) that makes this node one of several nodes of its region, e.g. 10.0.0.5:7946 (empty: a region of one node)")
	fs.StringVar(&c.gossipAdvertise, "gossip-advertise-addr", "", "gossip address the region's other nodes reach this node at (default --gossip-addr)")
	fs.Var((*listValue)(&c.join), "join", "comma-separated gossip addresses of live nodes of this region to join through (empty: start the region)")
	fs.StringVar(&c.gossipKeyFile, "gossip-key", "", "file holding the region's gossip key (base64 of 16, 24 or 32 bytes; 'geocache cert gossip-key' makes one): gossip is encrypted and authenticated with it")
	fs.IntVar(&c.copies, "copies", 0, "nodes of the region owning each hash slot (0: 2)")
	fs.StringVar(&c.announceAddr, "announce-addr", "", "Redis address announced to cluster-aware clients (CLUSTER SLOTS; default --addr)")
	fs.StringVar(&c.peerAnnounceAddr, "peer-announce-addr", "", "replication address the region's other nodes dial (default --peer-addr; required when --peer-addr is a wildcard)")
	fs.BoolVar(&c.clusterForward, "cluster-forward", false, "each node keeps only its own slots and forwards commands on other slots to their owners in the region, so that any client may use any node (cluster-aware clients still go straight to the owners); excludes --cluster-redirect")
	fs.BoolVar(&c.clusterRedirect, "cluster-redirect", false, "answer as a Redis Cluster node: -MOVED for keys of slots this node does not own, -CROSSSLOT for keys in several slots; each node then keeps only its own slots (off: every node keeps and serves every key)")
	// RESP protection
	fs.Var(enumValue{&c.protectedMode, []string{"yes", "no"}}, "protected-mode", "without --requirepass, serve only loopback clients and answer others Redis's -DENIED error: yes or no (default yes)")
	fs.DurationVar(&c.authTimeout, "auth-timeout", 0, "with --requirepass, close RESP clients not authenticated this long after they connect (0: "+resp.DefaultAuthTimeout.String()+")")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 0, "close RESP clients whose request has not arrived whole this long after its first byte, plus a second per MiB of it received; bounds slow clients and TLS handshakes (0: "+resp.DefaultRequestTimeout.String()+")")
	fs.Var((*sizeValue)(&c.maxClientBuffer), "max-client-buffer", "bound on the bytes held in RESP request buffers across all clients; a client needing more is refused (default the larger of a quarter of --max-memory and 16 requests of the largest size, --max-value-size + 1MiB)")
	fs.StringVar(&c.tlsAddr, "tls-addr", "", "listen address of RESP over TLS, with the node's --tls-cert (e.g. 0.0.0.0:6390; empty: off)")
	fs.BoolVar(&c.tlsClientAuth, "tls-client-auth", false, "require RESP clients on --tls-addr to present a certificate signed by --tls-ca")
	// Pub/sub
	fs.Var(&c.pubsubLimit, "client-output-buffer-limit-pubsub", `"<hard> <soft> <seconds>" as Redis's client-output-buffer-limit pubsub: a subscriber whose unwritten output reaches <hard> bytes, or stays at or above <soft> bytes for more than <seconds>, is disconnected; sizes in Redis's units (32mb and 32MiB are 32 MiB, 32m is 32,000,000 bytes), 0 turns a limit off`)
	return fs
}

// parseServeConfig reads the flags in args and, for each flag not given
// there, the environment variable GEOCACHE_<FLAG> from environ ("KEY=value"
// entries). An empty variable counts as unset. Errors wrap errUsage, or are
// flag.ErrHelp.
func parseServeConfig(args, environ []string) (serveConfig, *flag.FlagSet, error) {
	var c serveConfig
	fs := newServeFlags(&c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, fs, err
		}
		return c, fs, fmt.Errorf("%w: %s", errUsage, doubleDash(err.Error()))
	}
	if fs.NArg() > 0 {
		return c, fs, fmt.Errorf("%w: unexpected argument %q (serve takes only flags)", errUsage, fs.Arg(0))
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) && v != "" && !isTestHookVar(k) {
			env[k] = v
		}
	}
	onCmdLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v, ok := env[name]
		delete(env, name)
		if !ok || onCmdLine[f.Name] || err != nil {
			return // the flag wins over the environment
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = fmt.Errorf("%w: invalid value %q for %s: %w", errUsage, v, name, e)
		}
	})
	if err != nil {
		return c, fs, err
	}
	for k := range env {
		c.unknownEnv = append(c.unknownEnv, k)
	}
	// Replication listens by default only for a node that has peers: a
	// single node must not hold a port it does not use (a second single
	// node on the same host would find it taken).
	if !isSet(fs, "peer-addr") && (len(c.peers) > 0 || c.gossipAddr != "") {
		c.peerAddr = defaultPeerAddr
	}
	slices.Sort(c.unknownEnv)
	return c, fs, c.validate()
}

// flagRef matches a flag named in the flag package's errors, which write
// it with one dash ("invalid value "x" for flag -node").
var flagRef = regexp.MustCompile(`(flag|defined:|argument:|value "[^"]*" for) -([A-Za-z])`)

// doubleDash writes the flags named in msg as the help does: --node.
func doubleDash(msg string) string { return flagRef.ReplaceAllString(msg, "$1 --$2") }

// envName is the environment variable of flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// validate checks what the flag values alone cannot: addresses, how flags
// fit together, and then the node's Config as the flags set it, by
// geocache's own rules (Config.Validate), reported with the flags' names.
func (c *serveConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
	}
	if err := checkAddr(c.addr, false); err != nil {
		return bad("--addr: %v", err)
	}
	if c.peerAddr != "" {
		if err := checkAddr(c.peerAddr, false); err != nil {
			return bad("--peer-addr: %v", err)
		}
	} else if len(c.peers) > 0 {
		return bad("--peers needs --peer-addr: a node that sends its writes but receives no one else's would diverge")
	}
	if c.adminAddr != "" {
		if err := checkAddr(c.adminAddr, false); err != nil {
			return bad("--admin-addr: %v", err)
		}
	}
	seen := map[string]string{}
	for _, a := range []struct{ flag, addr string }{{"--addr", c.addr}, {"--peer-addr", c.peerAddr}, {"--admin-addr", c.adminAddr}, {"--tls-addr", c.tlsAddr}} {
		if a.addr == "" || strings.HasSuffix(a.addr, ":0") {
			continue
		}
		if other, dup := seen[a.addr]; dup {
			return bad("%s and %s are both %s", other, a.flag, a.addr)
		}
		seen[a.addr] = a.flag
	}
	for _, p := range c.peers {
		if err := checkAddr(p, true); err != nil {
			return bad("--peers: %v", err)
		}
	}
	if err := c.validateGossip(); err != nil {
		return err
	}
	if err := c.nodeConfig().Validate(); err != nil {
		return flagError(err)
	}
	if err := c.validateRESPGuard(); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.validatePubSub(); err != nil {
		return err
	}
	largestValue := c.largestValue()
	switch {
	case c.maxClients < 1:
		return bad("--max-clients must be at least 1")
	case c.idleTimeout < 0:
		return bad("--idle-timeout must not be negative")
	case c.antiEntropyInterval < 0: // Config reads it as "no periodic rounds": not a flag's meaning
		return bad("--anti-entropy-interval must not be negative")
	case c.replLogSize != 0 && c.replLogSize < largestValue:
		return bad("--replication-log-size %s is below the largest value, %s (--max-value-size): the log must hold the largest write", formatSize(c.replLogSize), formatSize(largestValue))
	}
	return nil
}

// nodeConfig is the node's Config as the flags set it; start adds the
// listener, the logger, TLS and the test hooks.
func (c *serveConfig) nodeConfig() geocache.Config {
	return geocache.Config{
		Cluster: c.cluster, Region: c.region, NodeID: c.node, NodeName: c.name,
		PeerAddr: c.peerAddr, Peers: c.peers,
		MaxBytes: c.maxMemory, MaxEntries: c.maxEntries, DefaultTTL: c.defaultTTL,
		KeyspaceEvents:   c.keyspaceEvents,
		TombstoneHorizon: c.tombstoneHorizon, AntiEntropyInterval: c.antiEntropyInterval,
		MaxTombstones: c.maxTombstones,
		MaxValueBytes: int(min(c.maxValueSize, math.MaxInt)), ReplicationLogBytes: c.replLogSize,
		LargeValueWindow: int(min(c.largeWindow, math.MaxInt)),
		Gossip:           c.gossipConfig(),
	}
}

// configFlags names the flag that sets each Config field nodeConfig sets.
var configFlags = map[string]string{
	"Cluster": "--cluster", "Region": "--region", "NodeID": "--node", "NodeName": "--name",
	"PeerAddr": "--peer-addr", "Peers": "--peers",
	"MaxBytes": "--max-memory", "MaxEntries": "--max-entries", "DefaultTTL": "--default-ttl",
	"KeyspaceEvents":   "--notify-keyspace-events",
	"TombstoneHorizon": "--tombstone-horizon", "AntiEntropyInterval": "--anti-entropy-interval",
	"MaxTombstones": "--max-tombstones", "MaxValueBytes": "--max-value-size", "ReplicationLogBytes": "--replication-log-size",
	"LargeValueWindow": "--large-value-window",
	"Gossip.Addr":      "--gossip-addr", "Gossip.Copies": "--copies", "Gossip.Key": "--gossip-key",
}

// fieldsToFlags rewrites the Config field names in a ConfigError's reason
// as flags.
var fieldsToFlags = func() *strings.Replacer {
	var pairs []string
	for field, flag := range configFlags {
		pairs = append(pairs, field, flag)
	}
	return strings.NewReplacer(pairs...)
}()

// flagError reports an error of Config.Validate as a usage error in the
// flags' terms: "--max-value-size 1GiB exceeds 512MiB, ...".
func flagError(err error) error {
	var ce *geocache.ConfigError
	name, ok := "", false
	if errors.As(err, &ce) {
		name, ok = configFlags[ce.Field]
	}
	if !ok {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch v := ce.Value.(type) {
	case nil:
	case int:
		name += " " + formatFieldInt(ce.Field, int64(v))
	case int64:
		name += " " + formatFieldInt(ce.Field, v)
	case time.Duration:
		name += " " + v.String()
	default:
		name += " " + fmt.Sprint(v)
	}
	return fmt.Errorf("%w: %s %s", errUsage, name, fieldsToFlags.Replace(ce.Reason))
}

// formatFieldInt writes a Config field's number as its flag takes it.
func formatFieldInt(field string, n int64) string {
	switch field {
	case "MaxBytes", "MaxValueBytes", "ReplicationLogBytes", "LargeValueWindow":
		return formatSize(n)
	}
	return strconv.FormatInt(n, 10)
}

// shortDuration writes d as time.Duration does, without zero minutes and
// seconds after larger units: 1h, 10m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// checkAddr checks a host:port listen or dial address. A dial address
// needs a host and a non-zero port.
func checkAddr(addr string, dial bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if dial && (host == "" || n == 0) {
		return fmt.Errorf("%q needs a host and a port other than 0", addr)
	}
	if strings.ContainsAny(host, " \t,") {
		return fmt.Errorf("%q: bad host %q", addr, host)
	}
	return nil
}

// sizeUnits are the units parseSize accepts, lower case. Every one is a
// power of 1024: a memory budget is counted in binary units, as Redis's
// maxmemory "mb" and "gb" are.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// parseSize parses a byte size: a whole number with an optional unit of
// sizeUnits, case-insensitive, optionally separated by spaces ("256MB",
// "1GiB", "512mb", "1 g", "1048576"). Fractions, signs and anything else
// are errors.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q must start with a whole number of bytes, e.g. 256MB", s)
	}
	unit := strings.TrimLeft(t[i:], " ")
	if strings.HasPrefix(unit, ".") || strings.HasPrefix(unit, ",") {
		return 0, fmt.Errorf("size %q: only whole numbers (write 1536MB, not 1.5GB)", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB: all powers of 1024)", s, unit)
	}
	n, err := strconv.ParseUint(t[:i], 10, 63)
	if err != nil || n > uint64(math.MaxInt64/mult) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(n) * mult, nil
}

// formatSize writes n in the largest unit that divides it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// sizeValue is a flag of a positive byte size.
type sizeValue int64

func (v *sizeValue) String() string { return formatSize(int64(*v)) }

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n < 1 {
		return errors.New("must be at least 1 byte")
	}
	*v = sizeValue(n)
	return nil
}

// uint32Value is a flag of a number from 1 to 2^32-1.
type uint32Value uint32

func (v *uint32Value) String() string { return strconv.FormatUint(uint64(*v), 10) }

func (v *uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return fmt.Errorf("must be a whole number from 1 to %d", uint32(math.MaxUint32))
	}
	*v = uint32Value(n)
	return nil
}

// nameValue is a flag of a region, node or cluster name: 1 to 64 letters,
// digits, '.', '_' or '-' (empty too if optional).
type nameValue struct {
	p        *string
	optional bool
}

func (v nameValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v nameValue) Set(s string) error {
	if s == "" && v.optional {
		*v.p = s
		return nil
	}
	if len(s) == 0 || len(s) > 64 {
		return errors.New("must be 1 to 64 characters")
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q: only letters, digits, '.', '_' and '-' are allowed", s)
		}
	}
	*v.p = s
	return nil
}

// listValue is a flag of comma-separated addresses; repeating the flag
// adds to the list.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }

func (v *listValue) Set(s string) error {
	for p := range strings.SplitSeq(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			return fmt.Errorf("%q has an empty entry", s)
		}
		*v = append(*v, p)
	}
	return nil
}

// levelValue is a flag of a log level.
type levelValue slog.Level

func (v *levelValue) String() string { return strings.ToLower(slog.Level(*v).String()) }

func (v *levelValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug":
		*v = levelValue(slog.LevelDebug)
	case "info":
		*v = levelValue(slog.LevelInfo)
	case "warn", "warning":
		*v = levelValue(slog.LevelWarn)
	case "error":
		*v = levelValue(slog.LevelError)
	default:
		return errors.New("must be debug, info, warn or error")
	}
	return nil
}

// enumValue is a flag of one of a few words.
type enumValue struct {
	p     *string
	words []string
}

func (v enumValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v enumValue) Set(s string) error {
	s = strings.ToLower(s)
	if !slices.Contains(v.words, s) {
		return fmt.Errorf("must be %s", strings.Join(v.words, " or "))
	}
	*v.p = s
	return nil
}

// obufLimit is Redis's client-output-buffer-limit of one class of
// clients: a hard limit, a soft limit and how long the output may stay at
// or above the soft one. A limit of 0 is off, as in Redis. The zero value
// (not set) stands for resp's defaults, Redis's "32mb 8mb 60".
type obufLimit struct {
	set        bool          // given by a flag or variable
	hard, soft int64         // bytes; 0: no limit
	softTime   time.Duration // whole seconds
}

// String writes l as Set takes it: "32MiB 8MiB 60".
func (l *obufLimit) String() string {
	if l == nil {
		return ""
	}
	v := *l
	if !v.set {
		v = obufLimit{hard: resp.DefaultPubSubHardLimit, soft: resp.DefaultPubSubSoftLimit, softTime: resp.DefaultPubSubSoftTime}
	}
	return formatSize(v.hard) + " " + formatSize(v.soft) + " " + strconv.FormatInt(int64(v.softTime/time.Second), 10)
}

// Set parses Redis's "<hard> <soft> <seconds>", e.g. "32mb 8mb 60", with
// an optional leading class name "pubsub" (as redis.conf writes it). The
// sizes are parseRedisSize's, without spaces inside one.
func (l *obufLimit) Set(s string) error {
	f := strings.Fields(s)
	if len(f) == 4 && strings.EqualFold(f[0], "pubsub") {
		f = f[1:]
	}
	if len(f) != 3 {
		return fmt.Errorf(`%q: want three values, "<hard> <soft> <seconds>", e.g. "32mb 8mb 60" (0 turns a limit off)`, s)
	}
	hard, err := parseRedisSize(f[0])
	if err != nil {
		return fmt.Errorf("hard limit: %w", err)
	}
	soft, err := parseRedisSize(f[1])
	if err != nil {
		return fmt.Errorf("soft limit: %w", err)
	}
	secs, err := strconv.ParseUint(f[2], 10, 63)
	if err != nil || secs > uint64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("seconds %q: want a whole number of seconds, e.g. 60", f[2])
	}
	if hard != 0 && soft > hard {
		return fmt.Errorf("the soft limit %s is above the hard limit %s: it could never apply", formatSize(soft), formatSize(hard))
	}
	*l = obufLimit{set: true, hard: hard, soft: soft, softTime: time.Duration(secs) * time.Second}
	return nil
}

// redisDecimalUnits are the units Redis's memtoull reads as powers of
// 1000: "32m" is 32,000,000 bytes there, where "32mb" is 32 MiB.
var redisDecimalUnits = map[string]int64{"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}

// parseRedisSize parses a size as redis.conf writes its
// client-output-buffer-limit: parseSize's, except that a bare k, m, g or t
// is a power of 1000, as Redis reads it (kb, mb, gb and tb, and KiB, MiB,
// GiB and TiB, are powers of 1024).
func parseRedisSize(s string) (int64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, err
	}
	t := strings.TrimSpace(s)
	digits := strings.TrimRight(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
	mult, ok := redisDecimalUnits[strings.ToLower(strings.TrimLeft(t[len(digits):], " "))]
	if !ok {
		return n, nil
	}
	v, err := strconv.ParseUint(digits, 10, 63)
	if err != nil || v > uint64(math.MaxInt64/mult) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v) * mult, nil
}

// noOutputLimit is a pub/sub output limit that is never reached: in
// resp.Config a limit of 0 means the default, not none.
const noOutputLimit = math.MaxInt64

// respLimits returns l as resp.Config's PubSubHardLimit, PubSubSoftLimit
// and PubSubSoftTime: zeros (the defaults) if l is not set. There 0 means
// the default, so a limit that is off
// becomes one no output reaches, and a soft time of 0 s becomes the
// shortest duration: a subscriber is disconnected as soon as its output is
// found at or above the soft limit again, later (Redis, whose clock counts
// whole seconds, does so in a later second).
func (l obufLimit) respLimits() (hard, soft int64, softTime time.Duration) {
	if !l.set {
		return 0, 0, 0
	}
	hard, soft, softTime = l.hard, l.soft, l.softTime
	if hard == 0 {
		hard = noOutputLimit
	}
	if soft == 0 {
		soft = noOutputLimit
	}
	if softTime == 0 {
		softTime = time.Nanosecond
	}
	return hard, soft, softTime
}

// validatePubSub checks --client-output-buffer-limit-pubsub against the
// largest message: a hard limit below it would disconnect every subscriber
// of a channel that such a message is published on.
func (c *serveConfig) validatePubSub() error {
	largestMessage := c.largestMessage()
	if h := c.pubsubLimit.hard; h != 0 && h < largestMessage {
		return fmt.Errorf("%w: --client-output-buffer-limit-pubsub: the hard limit %s is below the largest message, %s (--max-value-size + 65KiB for the channel and framing): one such message would disconnect every subscriber it is published to; raise the limit or lower --max-value-size",
			errUsage, formatSize(h), formatSize(largestMessage))
	}
	return nil
}

// largestValue is --max-value-size, or the node's default.
func (c *serveConfig) largestValue() int64 {
	if c.maxValueSize == 0 {
		return geocache.DefaultMaxValueBytes
	}
	return c.maxValueSize
}

// largestMessage is the largest pub/sub message frame: the payload (a
// value's bound), the channel (a key's bound) and a few dozen bytes of
// framing, or a pattern as well.
func (c *serveConfig) largestMessage() int64 {
	return c.largestValue() + geocache.MaxKeyBytes + 1<<10
}

// serveUsage writes the help of geocache serve, with the environment
// variable of every flag.
func serveUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: geocache serve [flags]

Runs one geocache node: a Redis-protocol (RESP) server on --addr, replication
with --peers on --peer-addr, and, with --admin-addr, HTTP /healthz, /readyz and
/metrics. A single node needs no flags. A multi-region node needs --region,
--node (unique), --peers and routable --addr and --peer-addr, and, beyond
loopback, --tls-cert, --tls-key and --tls-ca ('geocache cert' makes them) or
--insecure. SIGHUP reloads the TLS certificate and key.

Every flag can also be set with the environment variable shown; a flag on the
command line wins, and an empty variable counts as unset.

`)
	nameW, envW := 0, 0
	fs.VisitAll(func(f *flag.Flag) {
		nameW, envW = max(nameW, len(f.Name)), max(envW, len(envName(f.Name)))
	})
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%-*s  %-*s  %s%s\n", nameW, f.Name, envW, envName(f.Name), f.Usage, def)
	})
	fmt.Fprint(w, `
SIGINT or SIGTERM stops the node gracefully (exit 0); a second signal exits at once.
Exit status: 0 after a clean stop, 1 on a runtime error, 2 on a bad flag or variable
(including a --node that a peer reports as taken while the node starts).
`)
}
