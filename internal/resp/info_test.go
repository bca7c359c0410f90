package resp

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache"
)

// INFO keyspace counts the keys with an expiry and their mean time left,
// in Redis's format, on the node's clock.
func TestInfoKeyspaceExpires(t *testing.T) {
	clock := newManualClock()
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{Clock: clock})})
	r := dialRaw(t, addr)
	for _, c := range [][]string{
		{"SET", "a", "v", "EX", "10"},
		{"SET", "b", "v", "PX", "30000"},
		{"SET", "c", "v"},
	} {
		if got := r.do(c...); got != "+OK" {
			t.Fatalf("%q: %s", c, got)
		}
	}
	if got, want := r.do("INFO", "keyspace"), strconv.Quote("# Keyspace\r\ndb0:keys=3,expires=2,avg_ttl=20000\r\n"); got != want {
		t.Errorf("INFO keyspace: %s, want %s", got, want)
	}
	clock.advance(4 * time.Second)
	if got, want := r.do("INFO", "keyspace"), strconv.Quote("# Keyspace\r\ndb0:keys=3,expires=2,avg_ttl=16000\r\n"); got != want {
		t.Errorf("INFO keyspace 4 s later: %s, want %s", got, want)
	}
	r.do("PERSIST", "b")
	if got, want := r.do("INFO", "keyspace"), strconv.Quote("# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=6000\r\n"); got != want {
		t.Errorf("INFO keyspace after PERSIST: %s, want %s", got, want)
	}
}

// Every executed command is timed under its name; commands refused before
// they run are not; INFO commandstats and latencystats report them.
func TestCommandLatency(t *testing.T) {
	s, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	const n = 25
	var pipeline strings.Builder
	for i := range n {
		pipeline.WriteString(cmd("SET", "k"+strconv.Itoa(i), "v"))
		pipeline.WriteString(cmd("GET", "k"+strconv.Itoa(i)))
		pipeline.WriteString(cmd("GET", "missing"))
	}
	pipeline.WriteString(cmd("NOSUCH") + cmd("GET"))
	r.send(pipeline.String())
	for range 3 * n {
		r.reply()
	}
	r.reply()
	r.reply()

	lat := s.CommandLatency()
	if c := lat["set"]; c.Count() != n {
		t.Errorf("set timed %d times, want %d", c.Count(), n)
	}
	if c := lat["get"]; c.Count() != 2*n || c.Sum <= 0 {
		t.Errorf("get timed %d times (sum %v), want %d", c.Count(), c.Sum, 2*n)
	}
	if len(lat) != 2 {
		t.Errorf("timed commands %v, want get and set only (the arity error is not timed)", keys(lat))
	}

	info := r.do("INFO", "commandstats")
	if !strings.Contains(info, `cmdstat_get:calls=50,usec=`) || !strings.Contains(info, `cmdstat_set:calls=25,usec=`) {
		t.Errorf("INFO commandstats: %s", info)
	}
	// INFO itself is timed once it has answered.
	if lat := s.CommandLatency(); lat["info"].Count() != 1 {
		t.Errorf("info timed %d times, want 1", lat["info"].Count())
	}
	info = r.do("INFO", "latencystats")
	re := regexp.MustCompile(`latency_percentiles_usec_get:p50=[0-9]+\.[0-9]{3},p99=[0-9]+\.[0-9]{3},p99\.9=[0-9]+\.[0-9]{3}\\r\\n`)
	if !re.MatchString(info) {
		t.Errorf("INFO latencystats: %s", info)
	}
	for _, sec := range []string{"# Commandstats", "# Latencystats"} {
		if all := r.do("INFO", "all"); !strings.Contains(all, sec) {
			t.Errorf("INFO all lacks %s", sec)
		}
		if def := r.do("INFO"); strings.Contains(def, sec) {
			t.Errorf("plain INFO has %s (Redis leaves it to INFO all)", sec)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// Timing a command allocates nothing.
func TestObserveCommandAllocatesNothing(t *testing.T) {
	var l commandLatency
	c := &conn{id: 5}
	get := lookupCommand([]byte("GET"))
	if n := testing.AllocsPerRun(1000, func() {
		c.tick = monoNow()
		l.observe(c, get)
	}); n != 0 {
		t.Errorf("timing a command allocates %v times", n)
	}
	if snap := l[get.id].Snapshot(); snap.Count() < 1000 {
		t.Errorf("%d observations counted", snap.Count())
	}
}

// BenchmarkCommandTiming is what timing adds to every command of a
// pipeline: one clock read and an observation.
func BenchmarkCommandTiming(b *testing.B) {
	var l commandLatency
	c := &conn{id: 5, tick: monoNow()}
	get := lookupCommand([]byte("GET"))
	b.ReportAllocs()
	for b.Loop() {
		l.observe(c, get)
	}
}
