package resp

import (
	"regexp"
	"strings"
	"testing"
)

// TestConfigResetstat: CONFIG RESETSTAT answers +OK and resets what INFO
// counts — the stats section's counters, commandstats, latencystats,
// errorstats — as redis-server 7.0.15 does (the same checks pass against
// it), and not SLOWLOG.
func TestConfigResetstat(t *testing.T) {
	s, addr := startServer(t, Config{})
	checkConfigResetstat(t, addr)
	// The counters behind /metrics keep counting: Prometheus counters
	// never go back.
	before := s.Stats()
	lat := s.CommandLatency()["get"].Count()
	r := dialRaw(t, addr)
	if got := r.do("CONFIG", "RESETSTAT"); got != "+OK" {
		t.Fatal(got)
	}
	if after := s.Stats(); after.Commands <= before.Commands || after.Errors < before.Errors || after.Connections < before.Connections {
		t.Errorf("Stats went back after RESETSTAT: %+v, before %+v", after, before)
	}
	if got := s.CommandLatency()["get"].Count(); got < lat || lat == 0 {
		t.Errorf("CommandLatency of get: %d after RESETSTAT, %d before", got, lat)
	}
}

func TestConfigResetstatAgainstRedis(t *testing.T) {
	checkConfigResetstat(t, redisAddr(t))
}

func checkConfigResetstat(t *testing.T, addr string) {
	r := dialRaw(t, addr)
	info := func(section string) string {
		t.Helper()
		return strings.ReplaceAll(r.do("INFO", section), `\r\n`, "\n")
	}
	has := func(what, text string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !regexp.MustCompile(`(?m)^` + l + `$`).MatchString(text) {
				t.Errorf("%s: no line %q in\n%s", what, l, text)
			}
		}
	}
	if got := r.do("CONFIG", "RESETSTAT", "x"); got != arity("config|resetstat") {
		t.Errorf("CONFIG RESETSTAT x: %s", got)
	}
	// Something to reset: hits, misses, errors, calls, a slow log entry.
	slower := r.do("CONFIG", "GET", "slowlog-log-slower-than")
	r.do("CONFIG", "SET", "slowlog-log-slower-than", "0")
	r.do("SET", "rs:a", "1")
	r.do("GET", "rs:a")
	r.do("GET", "rs:nosuch")
	r.do("NOSUCHCOMMAND")
	r.do("INCR", "rs:a", "x")
	r.do("SLOWLOG", "RESET")
	r.do("GET", "rs:a")
	if got := r.do("SLOWLOG", "LEN"); got == ":0" {
		t.Fatalf("SLOWLOG LEN with a threshold of 0: %s", got)
	}
	if got := r.do("CONFIG", "resetstat"); got != "+OK" {
		t.Fatalf("CONFIG RESETSTAT: %s", got)
	}
	// Both count RESETSTAT as the one command since (Redis counts a
	// command once it ran; geocache counts INFO as it starts and took the
	// base after counting RESETSTAT).
	has("INFO stats", info("stats"),
		`total_connections_received:0`, `total_commands_processed:1`, `rejected_connections:0`,
		`expired_keys:0`, `evicted_keys:0`, `keyspace_hits:0`, `keyspace_misses:0`, `total_error_replies:0`)
	if got := info("errorstats"); got != "\"# Errorstats\n\"" {
		t.Errorf("INFO errorstats after RESETSTAT: %s", got)
	}
	cs := info("commandstats")
	has("INFO commandstats", cs,
		`cmdstat_config\|resetstat:calls=1,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0`,
		`cmdstat_info:calls=2,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0`)
	if n := strings.Count(cs, "cmdstat_"); n != 2 {
		t.Errorf("INFO commandstats after RESETSTAT lists %d commands, want 2:\n%s", n, cs)
	}
	ls := info("latencystats")
	has("INFO latencystats", ls, `latency_percentiles_usec_config\|resetstat:p50=[\d.]+,p99=[\d.]+,p99\.9=[\d.]+`)
	if n := strings.Count(ls, "latency_percentiles_usec_"); n != 2 { // config|resetstat and info
		t.Errorf("INFO latencystats after RESETSTAT lists %d commands, want 2:\n%s", n, ls)
	}
	if got := r.do("SLOWLOG", "LEN"); got == ":0" {
		t.Errorf("SLOWLOG LEN after RESETSTAT: %s; RESETSTAT does not empty it", got)
	}
	// Counting again from there.
	r.do("GET", "rs:a")
	r.do("GET", "rs:nosuch")
	r.do("GET", "rs:nosuch")
	r.do("INCR", "rs:a", "x")
	r.do("INCR", "rs:a", "x")
	has("INFO stats", info("stats"), `total_commands_processed:9`, `keyspace_hits:1`, `keyspace_misses:2`, `total_error_replies:2`)
	has("INFO errorstats", info("errorstats"), `errorstat_ERR:count=2`)
	has("INFO commandstats", info("commandstats"),
		`cmdstat_get:calls=3,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=0`,
		`cmdstat_incr:calls=0,usec=0,usec_per_call=0.00,rejected_calls=2,failed_calls=0`)
	if m := regexp.MustCompile(`\["slowlog-log-slower-than" "(-?\d+)"\]`).FindStringSubmatch(slower); m != nil {
		r.do("CONFIG", "SET", "slowlog-log-slower-than", m[1])
	}
	r.do("DEL", "rs:a")
}
