package main

import (
	"errors"
	"flag"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"1048576", 1 << 20},
		{"100B", 100},
		{"100b", 100},
		{"64k", 64 << 10},
		{"64KB", 64 << 10},
		{"64KiB", 64 << 10},
		{"256MB", 256 << 20},
		{"512mb", 512 << 20},
		{"1GiB", 1 << 30},
		{"1gib", 1 << 30},
		{"2G", 2 << 30},
		{"3TB", 3 << 40},
		{"1 GB", 1 << 30},
		{"  16MiB  ", 16 << 20},
		{"8589934591G", math.MaxInt64 - (1<<30 - 1)},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range good {
		got, err := parseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "must start with a whole number"},
		{"   ", "must start with a whole number"},
		{"MB", "must start with a whole number"},
		{"-1", "must start with a whole number"},
		{"+1", "must start with a whole number"},
		{"-1GB", "must start with a whole number"},
		{".5GB", "must start with a whole number"},
		{"1.5GB", "only whole numbers"},
		{"1,5GB", "only whole numbers"},
		{"1e9", `unknown unit "e9"`},
		{"512Mi", `unknown unit "Mi"`},
		{"10XB", `unknown unit "XB"`},
		{"10 M B", `unknown unit "M B"`},
		{"10MB extra", `unknown unit "MB extra"`},
		{"0x10", `unknown unit "x10"`},
		{"1PB", `unknown unit "PB"`},
		{"9223372036854775808", "too large"},
		{"8589934592G", "too large"},
		{"99999999999999999999999TB", "too large"},
	}
	for _, tt := range bad {
		got, err := parseSize(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("parseSize(%q) = %d, %v; want an error containing %q", tt.in, got, err, tt.msg)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1: "1", 1023: "1023", 1024: "1KiB", 64 << 20: "64MiB", 3 << 30: "3GiB", 1<<40 + 1: "1099511627777", 5 << 40: "5TiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
		if n > 0 {
			if back, err := parseSize(formatSize(n)); err != nil || back != n {
				t.Errorf("parseSize(formatSize(%d)) = %d, %v", n, back, err)
			}
		}
	}
}

func defaultServeConfig() serveConfig {
	return serveConfig{
		region: "local", node: 1, addr: "127.0.0.1:6380",
		maxMemory: 64 << 20, maxClients: 10000, logLevel: slog.LevelInfo, logFormat: "text",
	}
}

func TestParseServeConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		want    func(*serveConfig) // applied to the defaults
		unknown []string
	}{
		{name: "defaults", want: func(*serveConfig) {}},
		{
			name: "every flag",
			args: []string{
				"--region", "eu-west", "--node", "7", "--name", "eu-a", "--cluster", "prod",
				"--addr", "0.0.0.0:6390", "--peer-addr", "10.0.0.5:7390",
				"--peers", "10.1.0.5:7380, 10.2.0.5:7380", "--max-memory", "1GiB", "--max-entries", "5000",
				"--default-ttl", "10m", "--requirepass", "s3cret", "--max-clients", "100",
				"--idle-timeout", "5m", "--admin-addr", "127.0.0.1:9380", "--log-level", "debug",
				"--log-format", "json",
				"--max-value-size", "2MiB", "--replication-log-size", "256MiB", "--ready-requires-peers",
				"--large-value-window", "16MiB",
				"--tls-cert", "n.pem", "--tls-key", "n-key.pem", "--tls-ca", "ca.pem", "--insecure",
			},
			want: func(c *serveConfig) {
				*c = serveConfig{
					region: "eu-west", node: 7, name: "eu-a", cluster: "prod",
					addr: "0.0.0.0:6390", peerAddr: "10.0.0.5:7390",
					peers:     []string{"10.1.0.5:7380", "10.2.0.5:7380"},
					maxMemory: 1 << 30, maxEntries: 5000, defaultTTL: 10 * time.Minute,
					requirePass: "s3cret", maxClients: 100, idleTimeout: 5 * time.Minute,
					adminAddr: "127.0.0.1:9380", logLevel: slog.LevelDebug, logFormat: "json",
					maxValueSize: 2 << 20, replLogSize: 256 << 20, readyRequiresPeers: true, largeWindow: 16 << 20,
					tlsCert: "n.pem", tlsKey: "n-key.pem", tlsCA: "ca.pem", insecure: true,
				}
			},
		},
		{
			name: "every variable",
			env: []string{
				"GEOCACHE_REGION=eu-west", "GEOCACHE_NODE=7", "GEOCACHE_NAME=eu-a", "GEOCACHE_CLUSTER=prod",
				"GEOCACHE_ADDR=0.0.0.0:6390", "GEOCACHE_PEER_ADDR=10.0.0.5:7390",
				"GEOCACHE_PEERS=10.1.0.5:7380,10.2.0.5:7380", "GEOCACHE_MAX_MEMORY=1GiB", "GEOCACHE_MAX_ENTRIES=5000",
				"GEOCACHE_DEFAULT_TTL=10m", "GEOCACHE_REQUIREPASS=s3cret", "GEOCACHE_MAX_CLIENTS=100",
				"GEOCACHE_IDLE_TIMEOUT=5m", "GEOCACHE_ADMIN_ADDR=127.0.0.1:9380", "GEOCACHE_LOG_LEVEL=DEBUG",
				"GEOCACHE_LOG_FORMAT=JSON",
				"GEOCACHE_TEST_CLOCK_OFFSET=-250ms", // a test hook: serve reads it, not the flags
				"GEOCACHE_MAX_VALUE_SIZE=2MiB", "GEOCACHE_REPLICATION_LOG_SIZE=256MiB", "GEOCACHE_READY_REQUIRES_PEERS=true",
				"GEOCACHE_TLS_CERT=n.pem", "GEOCACHE_TLS_KEY=n-key.pem", "GEOCACHE_TLS_CA=ca.pem", "GEOCACHE_INSECURE=true",
			},
			want: func(c *serveConfig) {
				*c = serveConfig{
					region: "eu-west", node: 7, name: "eu-a", cluster: "prod",
					addr: "0.0.0.0:6390", peerAddr: "10.0.0.5:7390",
					peers:     []string{"10.1.0.5:7380", "10.2.0.5:7380"},
					maxMemory: 1 << 30, maxEntries: 5000, defaultTTL: 10 * time.Minute,
					requirePass: "s3cret", maxClients: 100, idleTimeout: 5 * time.Minute,
					adminAddr: "127.0.0.1:9380", logLevel: slog.LevelDebug, logFormat: "json",
					maxValueSize: 2 << 20, replLogSize: 256 << 20, readyRequiresPeers: true,
					tlsCert: "n.pem", tlsKey: "n-key.pem", tlsCA: "ca.pem", insecure: true,
				}
			},
		},
		{
			name: "flag wins over variable",
			args: []string{"-region=us-east", "--max-memory=512mb", "--peers", "10.9.0.1:7380", "--insecure"},
			env:  []string{"GEOCACHE_REGION=eu-west", "GEOCACHE_MAX_MEMORY=1GiB", "GEOCACHE_PEERS=10.1.0.5:7380", "GEOCACHE_NODE=3"},
			want: func(c *serveConfig) {
				c.region, c.maxMemory, c.peers, c.node, c.insecure = "us-east", 512<<20, []string{"10.9.0.1:7380"}, 3, true
				c.peerAddr = "127.0.0.1:7380" // the default with --peers
			},
		},
		{
			name: "a valid variable is not read when its flag is given, even if invalid",
			args: []string{"--max-memory", "2GB"},
			env:  []string{"GEOCACHE_MAX_MEMORY=lots"},
			want: func(c *serveConfig) { c.maxMemory = 2 << 30 },
		},
		{
			name: "empty variables are unset",
			env:  []string{"GEOCACHE_REGION=", "GEOCACHE_MAX_MEMORY=", "GEOCACHE_PEER_ADDR="},
			want: func(*serveConfig) {},
		},
		{
			name: "repeated --peers add up",
			args: []string{"--peers", "a:1,b:2", "--peers", "c:3", "--insecure"},
			want: func(c *serveConfig) {
				c.peers, c.peerAddr, c.insecure = []string{"a:1", "b:2", "c:3"}, "127.0.0.1:7380", true
			},
		},
		{
			name: "admin and peer addr may be off",
			args: []string{"--peer-addr", "", "--admin-addr", ""},
			want: func(c *serveConfig) { c.peerAddr = "" },
		},
		{
			name: "port 0 everywhere (tests)",
			args: []string{"--addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
			want: func(c *serveConfig) { c.addr, c.peerAddr, c.adminAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0" },
		},
		{
			name:    "unknown GEOCACHE_ variables are reported; others ignored",
			env:     []string{"GEOCACHE_MAXMEMORY=1GB", "GEOCACHE_REGOIN=x", "HOME=/root", "NOEQUALS"},
			want:    func(*serveConfig) {},
			unknown: []string{"GEOCACHE_MAXMEMORY", "GEOCACHE_REGOIN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := parseServeConfig(tt.args, tt.env)
			if err != nil {
				t.Fatalf("parseServeConfig: %v", err)
			}
			want := defaultServeConfig()
			tt.want(&want)
			want.unknownEnv = tt.unknown
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseServeConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		msg  string
	}{
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined: --bogus"},
		{"bad value names the flag as the help does", []string{"--node", "x"}, nil, `invalid value "x" for flag --node:`},
		{"missing value names the flag as the help does", []string{"--node"}, nil, "flag needs an argument: --node"},
		{"bad boolean names the flag as the help does", []string{"--ready-requires-peers=maybe"}, nil, `for --ready-requires-peers:`},
		{"value over Redis's largest", []string{"--max-value-size", "513MiB"}, nil, "--max-value-size 513MiB exceeds 512MiB, the largest value Redis takes (proto-max-bulk-len)"},
		{"log smaller than a value", []string{"--max-value-size", "2MiB", "--replication-log-size", "1MiB"}, nil, "--replication-log-size 1MiB is below the largest value, 2MiB"},
		{"log smaller than the default value", []string{"--replication-log-size", "8MiB"}, nil, "--replication-log-size 8MiB is below the largest value, 16MiB"},
		{"zero log size", []string{"--replication-log-size", "0"}, nil, "at least 1 byte"},
		{"window below a part", []string{"--large-value-window", "64KiB"}, nil, "--large-value-window 64KiB is outside 256KiB to 256MiB"},
		{"positional argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"bad size", []string{"--max-memory", "12XB"}, nil, `unknown unit "XB"`},
		{"fractional size", []string{"--max-memory", "1.5GB"}, nil, "only whole numbers"},
		{"zero size", []string{"--max-memory", "0"}, nil, "at least 1 byte"},
		{"negative size", []string{"--max-memory", "-5MB"}, nil, "whole number"},
		{"bad size in env names the variable", nil, []string{"GEOCACHE_MAX_MEMORY=lots"}, `invalid value "lots" for GEOCACHE_MAX_MEMORY`},
		{"node 0", []string{"--node", "0"}, nil, "from 1 to 4294967295"},
		{"node not a number", []string{"--node", "one"}, nil, "from 1 to 4294967295"},
		{"node too large", []string{"--node", "4294967296"}, nil, "from 1 to 4294967295"},
		{"node negative in env", nil, []string{"GEOCACHE_NODE=-1"}, "GEOCACHE_NODE"},
		{"empty region", []string{"--region", ""}, nil, "1 to 64 characters"},
		{"region with a space", []string{"--region", "eu west"}, nil, "only letters, digits"},
		{"region too long", []string{"--region", strings.Repeat("r", 65)}, nil, "1 to 64 characters"},
		{"name with a slash", []string{"--name", "a/b"}, nil, "only letters, digits"},
		{"bad log level", []string{"--log-level", "verbose"}, nil, "debug, info, warn or error"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "text or json"},
		{"bad duration", []string{"--default-ttl", "10"}, nil, "default-ttl"},
		{"negative ttl", []string{"--default-ttl", "-1s"}, nil, "--default-ttl must not be negative"},
		{"negative idle timeout", []string{"--idle-timeout", "-1s"}, nil, "--idle-timeout must not be negative"},
		{"negative max entries", []string{"--max-entries", "-1"}, nil, "--max-entries must not be negative"},
		{"zero max clients", []string{"--max-clients", "0"}, nil, "--max-clients must be at least 1"},
		{"addr without port", []string{"--addr", "localhost"}, nil, "--addr"},
		{"addr with bad port", []string{"--addr", "localhost:99999"}, nil, "port \"99999\""},
		{"admin addr bad", []string{"--admin-addr", "9380"}, nil, "--admin-addr"},
		{"same addr twice", []string{"--admin-addr", "127.0.0.1:6380"}, nil, "--addr and --admin-addr are both 127.0.0.1:6380"},
		{"empty peer", []string{"--peers", "a:1,,b:2"}, nil, "empty entry"},
		{"peer without port", []string{"--peers", "10.0.0.1"}, nil, "--peers"},
		{"peer port 0", []string{"--peers", "10.0.0.1:0"}, nil, "port other than 0"},
		{"peer is self", []string{"--peers", "127.0.0.1:7380"}, nil, "own --peer-addr"},
		{"peer twice", []string{"--peers", "a:1,a:1"}, nil, "listed twice"},
		{"peers without listening", []string{"--peer-addr", "", "--peers", "a:1"}, nil, "--peers needs --peer-addr"},
		{"join without gossip", []string{"--join", "127.0.0.1:7946"}, nil, "--join needs --gossip-addr"},
		{"copies without gossip", []string{"--copies", "3"}, nil, "--copies needs --gossip-addr"},
		{"redirect without gossip", []string{"--cluster-redirect"}, nil, "--cluster-redirect needs --gossip-addr"},
		{"redirect without gossip in env", nil, []string{"GEOCACHE_CLUSTER_REDIRECT=true"}, "--cluster-redirect needs --gossip-addr"},
		{"forward without gossip", []string{"--cluster-forward"}, nil, "--cluster-forward needs --gossip-addr"},
		{"forward and redirect", []string{"--gossip-addr", "127.0.0.1:7946", "--cluster-forward", "--cluster-redirect"}, nil, "--cluster-redirect and --cluster-forward exclude each other"},
		{"peer announce without gossip", []string{"--peer-announce-addr", "10.0.0.1:7380"}, nil, "--peer-announce-addr needs --gossip-addr"},
		{"wildcard peer addr in a region", []string{"--gossip-addr", "127.0.0.1:7946", "--peer-addr", "0.0.0.0:7380", "--insecure"}, nil,
			"--peer-addr 0.0.0.0:7380 is not an address the region's other nodes can reach: give --peer-announce-addr"},
		{"peer announce without port", []string{"--gossip-addr", "127.0.0.1:7946", "--peer-announce-addr", "10.0.0.1"}, nil, "--peer-announce-addr"},
		{"gossip without peer addr", []string{"--gossip-addr", "127.0.0.1:7946", "--peer-addr", ""}, nil, "--gossip-addr needs --peer-addr"},
		{"gossip beyond loopback without a key", []string{"--gossip-addr", "10.0.0.1:7946"}, nil, "give every node of the region --gossip-key"},
		// Rules of the node's Config, reported with the flags' names.
		{"negative tombstone horizon", []string{"--tombstone-horizon", "-1s"}, nil, "--tombstone-horizon must not be negative"},
		{"too many tombstones", []string{"--max-tombstones", "3000000000"}, nil, "--max-tombstones 3000000000 exceeds 2147483646"},
		{"anti-entropy beyond half the horizon", []string{"--tombstone-horizon", "1m", "--anti-entropy-interval", "31s"}, nil,
			"--anti-entropy-interval 31s is more than half the --tombstone-horizon 1m0s"},
		{"anti-entropy beyond half the default horizon", []string{"--anti-entropy-interval", "31m"}, nil,
			"--anti-entropy-interval 31m0s is more than half the --tombstone-horizon 1h0m0s"},
		{"negative anti-entropy interval", []string{"--anti-entropy-interval", "-1s"}, nil, "--anti-entropy-interval must not be negative"},
		{"the test hook is no flag", []string{"--clock-offset", "1s"}, nil, "flag provided but not defined: --clock-offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseServeConfig(tt.args, tt.env)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want a usage error containing %q", err, tt.msg)
			}
		})
	}
	if _, _, err := parseServeConfig([]string{"-h"}, nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

// Every flag has a variable and the help lists both.
func TestServeUsageListsEveryVariable(t *testing.T) {
	var c serveConfig
	fs := newServeFlags(&c)
	var b strings.Builder
	serveUsage(&b, fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(b.String(), "--"+f.Name) || !strings.Contains(b.String(), envName(f.Name)) {
			t.Errorf("help lacks --%s or %s", f.Name, envName(f.Name))
		}
	})
	if n != 44 {
		t.Errorf("%d flags, want 44 (update docs/operations.md when adding one)", n)
	}
	if strings.Contains(b.String(), "clock-offset") || strings.Contains(b.String(), "GEOCACHE_TEST_") {
		t.Errorf("the help shows a test hook:\n%s", b.String())
	}
	if envName("max-memory") != "GEOCACHE_MAX_MEMORY" || envName("requirepass") != "GEOCACHE_REQUIREPASS" {
		t.Error("envName does not map --max-memory to GEOCACHE_MAX_MEMORY")
	}
}

// The help's columns line up whatever the length of a flag's name.
func TestServeUsageAligned(t *testing.T) {
	var c serveConfig
	fs := newServeFlags(&c)
	var b strings.Builder
	serveUsage(&b, fs)
	envCol, usageCol := -1, -1
	for line := range strings.SplitSeq(b.String(), "\n") {
		if !strings.HasPrefix(line, "  --") {
			continue
		}
		env := strings.Index(line, envPrefix)
		usage := env + strings.Index(line[env:], " ")
		for usage < len(line) && line[usage] == ' ' {
			usage++
		}
		if envCol == -1 {
			envCol, usageCol = env, usage
		}
		if env != envCol || usage != usageCol {
			t.Errorf("misaligned (variable at %d, text at %d; want %d, %d):\n%s", env, usage, envCol, usageCol, line)
		}
	}
	if envCol == -1 {
		t.Fatalf("no flag lines in:\n%s", b.String())
	}
}

// Without --peers a node listens for replication only if --peer-addr (or
// its variable) says so; with --peers, on the default address.
func TestPeerAddrDefault(t *testing.T) {
	tests := []struct {
		name      string
		args, env []string
		want      string
	}{
		{"single node", nil, nil, ""},
		{"peers", []string{"--peers", "10.0.0.2:7380", "--insecure"}, nil, "127.0.0.1:7380"},
		{"explicit flag", []string{"--peer-addr", "127.0.0.1:7390"}, nil, "127.0.0.1:7390"},
		{"explicit variable", nil, []string{"GEOCACHE_PEER_ADDR=127.0.0.1:7391"}, "127.0.0.1:7391"},
		{"peers and explicit flag", []string{"--peers", "10.0.0.2:7380", "--peer-addr", "0.0.0.0:7399", "--insecure"}, nil, "0.0.0.0:7399"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := parseServeConfig(tt.args, tt.env)
			if err != nil || c.peerAddr != tt.want {
				t.Errorf("peer addr %q, %v; want %q", c.peerAddr, err, tt.want)
			}
		})
	}
}

// A node listening on every interface announces the addresses given: the
// Redis one to cluster-aware clients, the replication one to its region.
func TestGossipAnnouncedAddrs(t *testing.T) {
	c, _, err := parseServeConfig([]string{
		"--addr", "0.0.0.0:6380", "--announce-addr", "10.0.0.5:6380",
		"--peer-addr", "0.0.0.0:7380", "--peer-announce-addr", "10.0.0.5:7380",
		"--gossip-addr", "10.0.0.5:7946", "--insecure", "--cluster-redirect",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := c.gossipConfig()
	if g.ClientAddr != "10.0.0.5:6380" || g.ReplAddr != "10.0.0.5:7380" || !c.clusterRedirect {
		t.Errorf("gossip config %+v, redirect %v", g, c.clusterRedirect)
	}
	if !g.SlotsOnly {
		t.Errorf("--cluster-redirect: the node keeps every slot")
	}
	c, _, err = parseServeConfig([]string{"--gossip-addr", "127.0.0.1:7946", "--cluster-forward"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := c.gossipConfig(); !g.SlotsOnly || !c.clusterForward {
		t.Errorf("--cluster-forward: %+v, forward %v; want slot-owned storage", g, c.clusterForward)
	}
	c, _, err = parseServeConfig([]string{"--gossip-addr", "127.0.0.1:7946"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g := c.gossipConfig(); g.ReplAddr != "" || g.ClientAddr != c.addr {
		t.Errorf("defaults: %+v (the node's listener and --addr)", g)
	}
}
