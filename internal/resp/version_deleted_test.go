package resp

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
	"github.com/redis/go-redis/v9"
)

// TestVersionOfDelete checks GEOCACHE VERSION's form for a delete the node
// remembers: [hlc, origin, -1, "deleted"], newer than the write it removed,
// in RESP2 and RESP3; a key never written stays nil.
func TestVersionOfDelete(t *testing.T) {
	clk := newManualClock()
	_, addr := startServer(t, Config{Node: testNode(t, geocache.Config{Clock: clk, NodeID: 7})})
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			r := dialRaw(t, addr)
			if got := r.do("HELLO", proto); got == "" {
				t.Fatal("no HELLO reply")
			}
			key := "k" + proto
			if got := r.do("GEOCACHE", "VERSION", key); got != "nil" {
				t.Fatalf("VERSION of a key never written = %s; want nil", got)
			}
			r.do("SET", key, "v")
			var setHLC, origin, exp int64
			if got := r.do("GEOCACHE", "VERSION", key); !scanVersion(got, "[:%d :%d :%d]", &setHLC, &origin, &exp) {
				t.Fatalf("VERSION after SET = %s", got)
			}
			clk.advance(time.Millisecond)
			if got := r.do("DEL", key); got != ":1" {
				t.Fatalf("DEL = %s", got)
			}
			got := r.do("GEOCACHE", "VERSION", key)
			var delHLC, delOrigin, delExp int64
			if !scanVersion(got, `[:%d :%d :%d "deleted"]`, &delHLC, &delOrigin, &delExp) {
				t.Fatalf(`VERSION after DEL = %s; want [:hlc :7 :-1 "deleted"]`, got)
			}
			if delHLC <= setHLC || delOrigin != 7 || delExp != -1 {
				t.Errorf("VERSION after DEL = %s; want an hlc above the set's %d, origin 7, -1", got, setHLC)
			}
			// A new write replaces the tombstone: the three-element form again.
			clk.advance(time.Millisecond)
			r.do("SET", key, "w")
			var hlc2 int64
			if got := r.do("GEOCACHE", "VERSION", key); !scanVersion(got, "[:%d :%d :%d]", &hlc2, &origin, &exp) || hlc2 <= delHLC {
				t.Errorf("VERSION after SET over the delete = %s; want a live entry newer than %d", got, delHLC)
			}
		})
	}
}

// scanVersion reports whether got matches format exactly.
func scanVersion(got, format string, args ...any) bool {
	n, err := fmt.Sscanf(got, format, args...)
	return err == nil && n == len(args) && fmt.Sprintf(format, deref(args)...) == got
}

func deref(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		out[i] = *a.(*int64)
	}
	return out
}

// TestVersionOfReplicatedDelete checks that a delete made in one region
// shows, with its origin, in GEOCACHE VERSION of the other.
func TestVersionOfReplicatedDelete(t *testing.T) {
	_, _, cus, ceu := twoRegions(t)
	if err := cus.Set(bg, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "eu to see the write", func() bool { return ceu.Get(bg, "k").Val() == "v" })
	if err := ceu.Del(bg, "k").Err(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "us to see the delete", func() bool { return errors.Is(cus.Get(bg, "k").Err(), redis.Nil) })
	vus, err := cus.Do(bg, "GEOCACHE", "VERSION", "k").Slice()
	if err != nil {
		t.Fatal(err)
	}
	veu, err := ceu.Do(bg, "GEOCACHE", "VERSION", "k").Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(vus) != 4 || vus[1] != int64(2) || vus[2] != int64(-1) || vus[3] != "deleted" {
		t.Fatalf("VERSION on us = %v; want [hlc 2 -1 deleted] (eu is node 2)", vus)
	}
	if !equalAny(vus, veu) {
		t.Errorf("versions of the delete differ: us %v, eu %v", vus, veu)
	}
}
