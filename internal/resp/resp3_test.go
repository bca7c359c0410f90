package resp

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRESP3Wire checks the bytes: HELLO 3 switches the connection's reply
// types, HELLO 2 switches back.
func TestRESP3Wire(t *testing.T) {
	_, addr := startServer(t, Config{})
	r := dialRaw(t, addr)
	r.send(cmd("GET", "nosuch") + cmd("MGET", "nosuch"))
	r.expect("$-1\r\n*1\r\n$-1\r\n")
	if got := r.do("HELLO", "3"); !strings.HasPrefix(got, `{"server": "redis", "version": "7.2.0", "proto": :3,`) {
		t.Fatalf("HELLO 3: %s", got)
	}
	r.send(cmd("GET", "nosuch") + cmd("MGET", "nosuch") + cmd("GEOCACHE", "VERSION", "nosuch"))
	r.expect("_\r\n*1\r\n_\r\n_\r\n")
	r.send(cmd("CONFIG", "GET", "maxclients"))
	r.expect("%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n")
	r.send(cmd("COMMAND", "INFO", "ttl"))
	r.expect("*1\r\n*10\r\n$3\r\nttl\r\n:2\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~0\r\n~0\r\n*0\r\n*0\r\n")
	r.send(cmd("INFO", "keyspace"))
	r.expect("=16\r\ntxt:# Keyspace\r\n\r\n") // the header alone, as Redis
	r.send(cmd("SET", "k", "v") + cmd("INFO", "keyspace"))
	r.expect("+OK\r\n=48\r\ntxt:# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n\r\n")
	if got := r.do("HELLO", "2"); !strings.HasPrefix(got, `["server" "redis" "version" "7.2.0" "proto" :2`) {
		t.Fatalf("HELLO 2: %s", got)
	}
	r.send(cmd("GET", "nosuch"))
	r.expect("$-1\r\n")
	if got := r.do("HELLO"); !strings.HasPrefix(got, `["server" "redis" "version" "7.2.0" "proto" :2`) {
		t.Fatalf("HELLO without a version keeps the protocol: %s", got)
	}
}

// TestRESP3GoRedis runs go-redis with Protocol 3 over the common commands.
func TestRESP3GoRedis(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := newClient(t, addr, func(o *redis.Options) { o.Protocol = 3 })
	if err := c.Get(bg, "nosuch").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of a missing key: %v; want redis.Nil", err)
	}
	if err := c.Set(bg, "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(bg, "k").Result(); v != "v" || err != nil {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if vs, err := c.MGet(bg, "k", "nosuch").Result(); err != nil || len(vs) != 2 || vs[0] != "v" || vs[1] != nil {
		t.Fatalf("MGET = %v, %v", vs, err)
	}
	if d, err := c.TTL(bg, "k").Result(); err != nil || d != time.Minute {
		t.Fatalf("TTL = %v, %v", d, err)
	}
	cfg, err := c.ConfigGet(bg, "max*").Result()
	if err != nil || cfg["maxclients"] != "10000" || cfg["maxmemory-policy"] != "allkeys-lru" {
		t.Fatalf("CONFIG GET max* = %v, %v", cfg, err)
	}
	info, err := c.Info(bg, "server").Result()
	if err != nil || !strings.Contains(info, "redis_version:7.2.0") {
		t.Fatalf("INFO server = %q, %v", info, err)
	}
	regions, err := c.Do(bg, "GEOCACHE", "REGIONS").Slice()
	if err != nil || len(regions) != 1 {
		t.Fatalf("GEOCACHE REGIONS = %v, %v", regions, err)
	}
	if m := asMap(regions[0]); m["state"] != "self" || m["region"] != "local" {
		t.Errorf("GEOCACHE REGIONS self entry in RESP3: %v", m)
	}
	if n, err := c.Exists(bg, "k", "k", "nosuch").Result(); n != 2 || err != nil {
		t.Errorf("EXISTS = %d, %v", n, err)
	}
	if v, err := c.Do(bg, "HELLO").Result(); err != nil || asMap(v)["proto"] != int64(3) {
		t.Errorf("HELLO on a go-redis RESP3 connection: %v, %v", v, err)
	}
}
