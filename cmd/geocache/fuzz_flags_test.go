package main

import (
	"errors"
	"flag"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the configuration parsers (invariant I7 of docs/design.md: a bad config is
// rejected with a clear error; nothing panics). Run one with, e.g.,
//
//	go test ./cmd/geocache -run '^$' -fuzz FuzzServeConfig -fuzztime 10m

// FuzzParseSize checks --max-memory's parser: it never panics, an error
// names the input, and an accepted size survives formatting and parsing
// again, in any letter case and with surrounding spaces.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{
		"0", "1", "1048576", "100B", "64k", "64KB", "64KiB", "256MB", "512mb", "1GiB", "2G", "3TB", "1 GB",
		"  16MiB  ", "8589934591G", "9223372036854775807", "", "MB", "-1", "+1", "1.5GB", "1,5GB", "1e9",
		"512Mi", "10 M B", "0x10", "1PB", "9223372036854775808", "8589934592G", "99999999999999999999999TB",
		"00000000000000000000001k", "1\tGB", "1\u00a0GB", "１GB",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Errorf("parseSize(%q): error %q does not name the input", s, err)
			}
			var v sizeValue
			if v.Set(s) == nil {
				t.Errorf("sizeValue.Set(%q) accepted what parseSize refused", s)
			}
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d: negative", s, n)
		}
		back, err := parseSize(formatSize(n))
		if err != nil || back != n {
			t.Errorf("parseSize(formatSize(%d) = %q) = %d, %v", n, formatSize(n), back, err)
		}
		for _, variant := range []string{strings.ToUpper(s), strings.ToLower(s), " " + s + " "} {
			if m, err := parseSize(variant); err != nil || m != n {
				t.Errorf("parseSize(%q) = %d, %v; but parseSize(%q) = %d", variant, m, err, s, n)
			}
		}
		var v sizeValue
		if err := v.Set(s); (err == nil) != (n >= 1) || (err == nil && int64(v) != n) {
			t.Errorf("sizeValue.Set(%q) = %v (value %d); parseSize gave %d", s, err, v, n)
		}
	})
}

// FuzzServeConfig checks geocache serve's flag and environment parsing:
// for any command line (one argument a line) and environment (one
// KEY=value a line) it never panics, fails only with a usage error, and an
// accepted configuration is valid, the same when parsed again, and the
// same when written back as flags — or as GEOCACHE_* variables — and
// parsed.
func FuzzServeConfig(f *testing.F) {
	f.Add("", "")
	f.Add("--region\neu-west\n--node\n7\n--peers\n10.1.0.5:7380, 10.2.0.5:7380\n--max-memory\n1GiB", "")
	f.Add("--addr\n0.0.0.0:6390\n--peer-addr\n10.0.0.5:7390\n--admin-addr\n127.0.0.1:9380\n--log-level\ndebug\n--log-format\njson",
		"GEOCACHE_REQUIREPASS=s3cret\nGEOCACHE_MAX_CLIENTS=100")
	f.Add("--peer-addr=\n--default-ttl=10m\n--idle-timeout=5m\n--max-entries=5000", "GEOCACHE_REGION=us\nGEOCACHE_NODE=3\nGEOCACHE_UNKNOWN=1")
	f.Add("--node\n0", "")
	f.Add("--peers\n127.0.0.1:7380", "")
	f.Add("-h", "")
	f.Add("--max-memory\n1.5GB", "GEOCACHE_MAX_MEMORY=0")
	f.Add("extra", "GEOCACHE_PEERS=a:1,,b:2")
	f.Add("--name\n", "GEOCACHE_CLUSTER=prod\nGEOCACHE_NAME=x")
	f.Add("--client-output-buffer-limit-pubsub\npubsub 64mb 16MB 120", "GEOCACHE_CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB=0 0 0")
	f.Fuzz(func(t *testing.T, argText, envText string) {
		var args, env []string
		if argText != "" {
			args = strings.Split(argText, "\n")
		}
		if envText != "" {
			env = strings.Split(envText, "\n")
		}
		c, _, err := parseServeConfig(args, env)
		if err != nil {
			if !errors.Is(err, errUsage) && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseServeConfig(%q, %q): %v is neither a usage error nor help", args, env, err)
			}
			if err.Error() == "" {
				t.Fatalf("parseServeConfig(%q, %q): empty error", args, env)
			}
			return
		}
		if err := c.validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		switch {
		case c.node == 0, c.maxMemory < 1, c.maxClients < 1, c.maxEntries < 0, c.defaultTTL < 0, c.idleTimeout < 0,
			c.tombstoneHorizon < 0, c.antiEntropyInterval < 0, c.maxTombstones < 0:
			t.Fatalf("accepted config out of range: %+v", c)
		case len(c.region) == 0 || len(c.region) > 64 || !utf8.ValidString(c.region):
			t.Fatalf("accepted region %q", c.region)
		case c.logFormat != "text" && c.logFormat != "json":
			t.Fatalf("accepted log format %q", c.logFormat)
		}
		for i, p := range c.peers {
			if checkAddr(p, true) != nil || p == c.peerAddr || slices.Contains(c.peers[:i], p) {
				t.Fatalf("accepted peer %q of %q", p, c.peers)
			}
		}
		again, _, err := parseServeConfig(args, env)
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("parsing twice: %+v then %+v, %v", c, again, err)
		}
		c.unknownEnv = nil
		flagArgs := renderServeFlags(c)
		back, _, err := parseServeConfig(flagArgs, nil)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("config %+v written as flags %q parses to %+v, %v", c, flagArgs, back, err)
		}
		if c.peerAddr == "" {
			return // an empty variable counts as unset: --peer-addr= has no variable form
		}
		var vars []string
		for i := 0; i+1 < len(flagArgs); i += 2 {
			vars = append(vars, envName(strings.TrimPrefix(flagArgs[i], "--"))+"="+flagArgs[i+1])
		}
		back, _, err = parseServeConfig(nil, vars)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("config %+v written as variables %q parses to %+v, %v", c, vars, back, err)
		}
	})
}

// renderServeFlags writes c as serve flags, one value per flag.
func renderServeFlags(c serveConfig) []string {
	a := []string{
		"--region", c.region, "--node", strconv.FormatUint(uint64(c.node), 10),
		"--name", c.name, "--cluster", c.cluster,
		"--addr", c.addr, "--peer-addr", c.peerAddr,
		"--max-memory", formatSize(c.maxMemory), "--max-entries", strconv.Itoa(c.maxEntries),
		"--default-ttl", c.defaultTTL.String(), "--requirepass", c.requirePass,
		"--max-clients", strconv.Itoa(c.maxClients), "--idle-timeout", c.idleTimeout.String(),
		"--admin-addr", c.adminAddr, "--log-level", strings.ToLower(c.logLevel.String()),
		"--log-format", c.logFormat,
		"--tombstone-horizon", c.tombstoneHorizon.String(), "--anti-entropy-interval", c.antiEntropyInterval.String(),
		"--max-tombstones", strconv.Itoa(c.maxTombstones),
	}
	if c.pubsubLimit.set {
		a = append(a, "--client-output-buffer-limit-pubsub", c.pubsubLimit.String())
	}
	if len(c.peers) > 0 {
		a = append(a, "--peers", strings.Join(c.peers, ","))
	}
	return a
}
