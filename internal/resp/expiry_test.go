package resp

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache"
)

// TestExpiryOnTheNodeClock drives expiry with the node's injected clock:
// no sleeps, exact values.
func TestExpiryOnTheNodeClock(t *testing.T) {
	clk := newManualClock()
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{Clock: clk})})
	r := dialRaw(t, addr)
	steps := []struct {
		advance time.Duration
		args    []string
		want    string
	}{
		{0, []string{"SET", "k", "v", "PX", "1500"}, "+OK"},
		{0, []string{"PTTL", "k"}, ":1500"},
		{0, []string{"TTL", "k"}, ":2"}, // Redis rounds: (1500+500)/1000
		{1, []string{"PTTL", "k"}, ":1499"},
		{500, []string{"TTL", "k"}, ":1"},
		{998, []string{"GET", "k"}, `"v"`},
		{1, []string{"GET", "k"}, "nil"},
		{0, []string{"TTL", "k"}, ":-2"},
		{0, []string{"SET", "k", "v", "EX", "10"}, "+OK"},
		{0, []string{"EXPIRE", "k", "20", "GT"}, ":1"},
		{0, []string{"PTTL", "k"}, ":20000"},
		{0, []string{"PEXPIREAT", "k", "now-ms+5000"}, ":1"},
		{0, []string{"PTTL", "k"}, ":5000"},
		{0, []string{"EXPIREAT", "k", "now-s+100", "LT"}, ":0"},
		{0, []string{"GETEX", "k", "PX", "100"}, `"v"`},
		{0, []string{"PTTL", "k"}, ":100"},
		{100, []string{"EXISTS", "k"}, ":0"},
		{0, []string{"SETEX", "s", "1", "v"}, "+OK"},
		{999, []string{"EXISTS", "s"}, ":1"},
		{1, []string{"EXISTS", "s"}, ":0"},
		{0, []string{"SET", "p", "v", "PX", "10"}, "+OK"},
		{0, []string{"PERSIST", "p"}, ":1"},
		{3600_000, []string{"GET", "p"}, `"v"`},
	}
	for i, st := range steps {
		clk.advance(time.Duration(st.advance) * time.Millisecond)
		for j, a := range st.args { // absolute times, at the step's time
			switch a {
			case "now-ms+5000":
				st.args[j] = strconv.FormatInt(clk.unixMilli()+5000, 10)
			case "now-s+100":
				st.args[j] = strconv.FormatInt(clk.unixMilli()/1000+100, 10)
			}
		}
		if got := r.do(st.args...); got != st.want {
			t.Errorf("step %d %q: got %s, want %s", i, st.args, got, st.want)
		}
	}
}

// TestVersionAndDefaultTTL checks GEOCACHE VERSION's fields and that writes
// without an expiry take the node's DefaultTTL, whichever path they take.
func TestVersionAndDefaultTTL(t *testing.T) {
	clk := newManualClock()
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{Clock: clk, DefaultTTL: time.Minute})})
	r := dialRaw(t, addr)
	for _, args := range [][]string{
		{"SET", "a", "v"},
		{"SET", "b", "v", "NX"},
		{"SETNX", "c", "v"},
		{"MSET", "d", "v"},
		{"SET", "e", "v", "KEEPTTL"},
	} {
		r.do(args...)
		if got := r.do("PTTL", args[1]); got != ":60000" {
			t.Errorf("%q: PTTL %s, want :60000 (the default TTL)", args, got)
		}
	}
	exp := strconv.FormatInt(clk.unixMilli()+60000, 10)
	got := r.do("GEOCACHE", "VERSION", "a")
	// hlc: wall ms << 16 | logical; origin 1 (the default NodeID).
	if want := "[:"; len(got) < 2 || got[:2] != want {
		t.Fatalf("GEOCACHE VERSION a = %s", got)
	}
	var hlc, origin, expireAt int64
	if _, err := fmt.Sscanf(got, "[:%d :%d :%d]", &hlc, &origin, &expireAt); err != nil {
		t.Fatalf("GEOCACHE VERSION a = %s: %v", got, err)
	}
	if hlc>>16 != clk.unixMilli() || origin != 1 || strconv.FormatInt(expireAt, 10) != exp {
		t.Errorf("GEOCACHE VERSION a = %s; want hlc with wall ms %d, origin 1, expire-at %s", got, clk.unixMilli(), exp)
	}
	r.do("PERSIST", "a")
	if got := r.do("GEOCACHE", "VERSION", "a"); !strings.HasSuffix(got, " :-1]") {
		t.Errorf("GEOCACHE VERSION after PERSIST = %s; want expire-at -1", got)
	}
}
