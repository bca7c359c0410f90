package resp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/cluster"
	"github.com/redis/go-redis/v9"
)

// respValue is a parsed RESP2/RESP3 reply: its type byte, its text (for
// scalars) and its elements (for aggregates; a map's keys and values
// alternate).
type respValue struct {
	kind  byte
	text  string
	elems []respValue
}

func parseRESP(t *testing.T, b []byte) respValue {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	v, err := readRESP(br)
	if err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	if rest, _ := br.Peek(1); len(rest) > 0 {
		t.Fatalf("bytes left after the reply in %q", b)
	}
	return v
}

func readRESP(br *bufio.Reader) (respValue, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return respValue{}, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return respValue{}, fmt.Errorf("bad line %q", line)
	}
	v := respValue{kind: line[0], text: line[1 : len(line)-2]}
	switch v.kind {
	case '+', '-', ':', ',', '#', '(', '_':
		return v, nil
	case '$', '=':
		n, err := strconv.Atoi(v.text)
		if err != nil || n < 0 {
			return v, err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return v, err
		}
		if string(b[n:]) != "\r\n" {
			return v, fmt.Errorf("bulk of %d bytes not followed by CRLF", n)
		}
		v.text = string(b[:n])
		return v, nil
	case '*', '~', '%', '>':
		n, err := strconv.Atoi(v.text)
		if err != nil {
			return v, err
		}
		if v.kind == '%' {
			n *= 2
		}
		for range n {
			e, err := readRESP(br)
			if err != nil {
				return v, err
			}
			v.elems = append(v.elems, e)
		}
		return v, nil
	}
	return v, fmt.Errorf("unknown type %q", line)
}

var fieldName = regexp.MustCompile(`^[a-z][a-z-]{0,20}[a-z]$`)

// shape renders a reply's structure without its values: aggregates keep
// their type and the shapes of their elements, with runs of equal element
// shapes collapsed into one ("+" after it), so that lists of different
// lengths (ranges, nodes) compare equal; bulk strings that look like field
// names ("slots", "role", "master") are kept, other scalars become their
// type byte.
func shape(v respValue) string {
	switch v.kind {
	case '*', '~', '%', '>':
		var parts []string
		for _, e := range v.elems {
			s := shape(e)
			if n := len(parts); n > 0 && (parts[n-1] == s || parts[n-1] == s+"+") {
				parts[n-1] = s + "+"
				continue
			}
			parts = append(parts, s)
		}
		return string(v.kind) + "[" + strings.Join(parts, " ") + "]"
	case '$':
		if fieldName.MatchString(v.text) {
			return strconv.Quote(v.text)
		}
	}
	return string(v.kind)
}

func redisReply(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "redis-7.0.15-cluster", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testMap is a region of three members with two copies, as the
// redis-server replies in testdata come from three masters with a replica
// each.
func testMap(t testing.TB, n, copies int) *cluster.Map {
	t.Helper()
	var ms []cluster.Member
	for i := 1; i <= n; i++ {
		ms = append(ms, cluster.Member{
			ID:       uint32(i),
			Name:     "n" + strconv.Itoa(i),
			Addr:     "127.0.0.1:" + strconv.Itoa(7000+i),
			ReplAddr: "127.0.0.1:" + strconv.Itoa(17000+i),
		})
	}
	m, err := cluster.New(ms, copies)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestClusterReplyShapes compares the shape of each reply with the one
// redis-server 7.0.15 gave (testdata/redis-7.0.15-cluster, recorded from
// a cluster of three masters with a replica each, asked at a master).
func TestClusterReplyShapes(t *testing.T) {
	m := testMap(t, 3, 2)
	for _, resp3 := range []bool{false, true} {
		suffix := ".resp2"
		if resp3 {
			suffix = ".resp3"
		}
		for _, tc := range []struct {
			name string
			ours []byte
		}{
			{"slots", appendClusterSlots(nil, m, resp3)},
			{"shards", appendClusterShards(nil, m, resp3)},
			{"myid", appendClusterMyID(nil, 1)},
			{"keyslot", appendClusterKeyslot(nil, []byte("foo"))},
			{"info", appendClusterInfo(nil, m, 3, resp3)},
			{"nodes", appendClusterNodes(nil, m, 1, 3, resp3)},
		} {
			t.Run(tc.name+suffix, func(t *testing.T) {
				want := shape(parseRESP(t, redisReply(t, tc.name+suffix)))
				if got := shape(parseRESP(t, tc.ours)); got != want {
					t.Errorf("shape\n got %s\nwant %s", got, want)
				}
			})
		}
	}
}

func TestClusterKeyslotMyID(t *testing.T) {
	if got, want := string(appendClusterKeyslot(nil, []byte("foo"))), string(redisReply(t, "keyslot.resp2")); got != want {
		t.Errorf("KEYSLOT foo: %q, redis %q", got, want)
	}
	if got, want := string(appendClusterMyID(nil, 9)), "$40\r\n"+cluster.HexID(9)+"\r\n"; got != want {
		t.Errorf("MYID: %q, want %q", got, want)
	}
}

// infoFields returns the names of the fields of a CLUSTER INFO text, in
// order, and checks each line is "name:value\r\n".
func infoFields(t *testing.T, text string) []string {
	t.Helper()
	if !strings.HasSuffix(text, "\r\n") {
		t.Fatalf("CLUSTER INFO text does not end in CRLF: %q", text)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || value == "" {
			t.Fatalf("CLUSTER INFO line %q", line)
		}
		names = append(names, name)
	}
	return names
}

// TestClusterInfo: the fields are Redis's, in its order, less the
// per-message-type counters Redis lists only when they are not zero.
func TestClusterInfo(t *testing.T) {
	perType := regexp.MustCompile(`^cluster_stats_messages_[a-z-]+_(sent|received)$`)
	var want []string
	for _, name := range infoFields(t, parseRESP(t, redisReply(t, "info.resp2")).text) {
		if !perType.MatchString(name) {
			want = append(want, name)
		}
	}
	m := testMap(t, 3, 2)
	text := parseRESP(t, appendClusterInfo(nil, m, 7, false)).text
	if got := infoFields(t, text); !slices.Equal(got, want) {
		t.Errorf("fields\n got %v\nwant %v", got, want)
	}
	for _, line := range []string{"cluster_state:ok", "cluster_known_nodes:3", "cluster_size:3", "cluster_current_epoch:7", "cluster_my_epoch:7"} {
		if !strings.Contains(text, line+"\r\n") {
			t.Errorf("no %q in %q", line, text)
		}
	}
	v := parseRESP(t, appendClusterInfo(nil, m, 7, true))
	if v.kind != '=' || !strings.HasPrefix(v.text, "txt:") || v.text[4:] != text {
		t.Errorf("RESP3 CLUSTER INFO: kind %q text %q", v.kind, v.text)
	}
}

// nodesLine is a line of CLUSTER NODES as redis-server 7.0 writes it for a
// master or a replica (checked against its reply too).
var nodesLine = regexp.MustCompile(`^([0-9a-f]{40}) (\S*):(\d+)@(\d+) (myself,)?(master|slave) (-|[0-9a-f]{40}) (\d+) (\d+) (\d+) connected((?: \d+(?:-\d+)?)*)$`)

func nodesLines(t *testing.T, text string) [][]string {
	t.Helper()
	if !strings.HasSuffix(text, "\n") || strings.Contains(text, "\r") {
		t.Fatalf("CLUSTER NODES text not LF-terminated lines: %q", text)
	}
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		sub := nodesLine.FindStringSubmatch(line)
		if sub == nil {
			t.Fatalf("CLUSTER NODES line %q", line)
		}
		out = append(out, sub)
	}
	return out
}

func TestClusterNodes(t *testing.T) {
	nodesLines(t, parseRESP(t, redisReply(t, "nodes.resp2")).text) // the pattern fits Redis
	m := testMap(t, 5, 2)
	text := parseRESP(t, appendClusterNodes(nil, m, 2, 4, false)).text
	lines := nodesLines(t, text)
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5", len(lines))
	}
	primaryOf := make([]string, cluster.Slots)
	for i, sub := range lines {
		mb := m.Members()[i]
		if sub[1] != cluster.HexID(mb.ID) || sub[2] != "127.0.0.1" || sub[3] != strconv.Itoa(7000+int(mb.ID)) || sub[4] != strconv.Itoa(17000+int(mb.ID)) {
			t.Errorf("line for member %d: %q", mb.ID, sub[0])
		}
		if (sub[5] == "myself,") != (mb.ID == 2) || sub[6] != "master" || sub[7] != "-" || sub[10] != "4" {
			t.Errorf("line for member %d: %q", mb.ID, sub[0])
		}
		for _, tok := range strings.Fields(sub[11]) {
			first, last, _ := strings.Cut(tok, "-")
			a, _ := strconv.Atoi(first)
			b := a
			if last != "" {
				b, _ = strconv.Atoi(last)
			}
			for slot := a; slot <= b; slot++ {
				primaryOf[slot] = sub[1]
			}
		}
	}
	for slot, id := range primaryOf {
		if want := cluster.HexID(m.Primary(slot).ID); id != want {
			t.Fatalf("slot %d: CLUSTER NODES lists it for %q, primary is %s", slot, id, want)
		}
	}
}

// fakeRedis returns a go-redis client speaking protocol proto to a fake
// server: HELLO gets a small map, every other command what reply returns.
func fakeRedis(t *testing.T, proto int, reply func(args []string) []byte) *redis.Client {
	t.Helper()
	return redis.NewClient(&redis.Options{
		Addr:            "fake:6379",
		Protocol:        proto,
		DisableIdentity: true,
		MaxRetries:      -1,
		PoolSize:        1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				br := bufio.NewReader(server)
				for {
					v, err := readRESP(br)
					if err != nil {
						return
					}
					var args []string
					for _, e := range v.elems {
						args = append(args, e.text)
					}
					out := reply(args)
					if strings.EqualFold(args[0], "hello") {
						out = []byte("%1\r\n$5\r\nproto\r\n:3\r\n")
					}
					if _, err := server.Write(out); err != nil {
						return
					}
				}
			}()
			return client, nil
		},
	})
}

// TestClusterRepliesGoRedis: go-redis parses the replies into what the map
// says, in RESP2 and RESP3.
func TestClusterRepliesGoRedis(t *testing.T) {
	m := testMap(t, 5, 2)
	for _, proto := range []int{2, 3} {
		t.Run("RESP"+strconv.Itoa(proto), func(t *testing.T) {
			rdb := fakeRedis(t, proto, func(args []string) []byte {
				resp3 := proto == 3
				switch strings.ToLower(strings.Join(args, " ")) {
				case "cluster slots":
					return appendClusterSlots(nil, m, resp3)
				case "cluster shards":
					return appendClusterShards(nil, m, resp3)
				case "cluster nodes":
					return appendClusterNodes(nil, m, 1, 5, resp3)
				case "cluster info":
					return appendClusterInfo(nil, m, 5, resp3)
				case "cluster myid":
					return appendClusterMyID(nil, 1)
				}
				if len(args) == 3 && strings.EqualFold(args[1], "keyslot") {
					return appendClusterKeyslot(nil, []byte(args[2]))
				}
				return []byte("-ERR unexpected\r\n")
			})
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // only catches a hang
			defer cancel()

			//lint:ignore SA1019 go-redis's ClusterClient still routes by CLUSTER SLOTS (osscluster.go, loadState).
			slots, err := rdb.ClusterSlots(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(slots) != len(m.Ranges()) {
				t.Fatalf("%d slot ranges, map has %d", len(slots), len(m.Ranges()))
			}
			for i, s := range slots {
				rg := m.Ranges()[i]
				if s.Start != rg.First || s.End != rg.Last || len(s.Nodes) != len(rg.Owners) {
					t.Fatalf("range %d: %+v, map %+v", i, s, rg)
				}
				for k, n := range s.Nodes {
					if n.ID != cluster.HexID(rg.Owners[k].ID) || n.Addr != rg.Owners[k].Addr {
						t.Fatalf("range %d node %d: %+v, map %+v", i, k, n, rg.Owners[k])
					}
				}
			}

			shards, err := rdb.ClusterShards(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			covered := 0
			for _, sh := range shards {
				for _, sr := range sh.Slots {
					for slot := sr.Start; slot <= sr.End; slot++ {
						covered++
						owners := m.Owners(int(slot))
						for k, n := range sh.Nodes {
							role := map[bool]string{true: "master", false: "replica"}[k == 0]
							if n.ID != cluster.HexID(owners[k].ID) || n.Role != role || n.Health != "online" ||
								net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10)) != owners[k].Addr {
								t.Fatalf("slot %d node %d: %+v, owner %+v", slot, k, n, owners[k])
							}
						}
					}
				}
			}
			if covered != cluster.Slots {
				t.Fatalf("shards cover %d slots", covered)
			}

			nodes, err := rdb.ClusterNodes(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n := len(nodesLines(t, nodes)); n != 5 {
				t.Fatalf("CLUSTER NODES: %d lines", n)
			}
			info, err := rdb.ClusterInfo(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(info, "cluster_state:ok\r\n") {
				t.Fatalf("CLUSTER INFO: %q", info)
			}
			if id, err := rdb.ClusterMyID(ctx).Result(); err != nil || id != cluster.HexID(1) {
				t.Fatalf("CLUSTER MYID: %q, %v", id, err)
			}
			if slot, err := rdb.ClusterKeySlot(ctx, "{user1000}.following").Result(); err != nil || slot != 3443 {
				t.Fatalf("CLUSTER KEYSLOT: %d, %v", slot, err)
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{string(appendMoved(nil, 3999, "127.0.0.1:6381")), "-MOVED 3999 127.0.0.1:6381\r\n"},
		{string(appendMoved(nil, 0, ":6381")), "-MOVED 0 :6381\r\n"},
		{string(appendAsk(nil, 16383, "[::1]:7000")), "-ASK 16383 [::1]:7000\r\n"},
		{string(appendMoved(nil, 1, "a\r\nb")), "-MOVED 1 a  b\r\n"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
	// go-redis reads a MOVED error as a redirection.
	rdb := fakeRedis(t, 2, func([]string) []byte { return appendMoved(nil, 12182, "127.0.0.1:7003") })
	defer rdb.Close()
	err := rdb.Get(context.Background(), "foo").Err()
	if err == nil || err.Error() != "MOVED 12182 127.0.0.1:7003" {
		t.Fatalf("GET: %v", err)
	}
}

// TestClusterReplyAllocs: KEYSLOT and the redirections write into the
// connection's buffer without allocating.
func TestClusterReplyAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	n := testing.AllocsPerRun(20, func() {
		buf = appendClusterKeyslot(buf[:0], []byte("foo"))
		buf = appendMoved(buf, 12182, "127.0.0.1:7003")
		buf = appendAsk(buf, 12182, "127.0.0.1:7003")
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// BenchmarkClusterSlots reports the size of CLUSTER SLOTS, which clients
// such as ioredis and Envoy fetch every few seconds, for regions of 3 and
// 20 nodes.
func BenchmarkClusterSlots(b *testing.B) {
	for _, n := range []int{3, 20} {
		m := testMap(b, n, 2)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			buf := appendClusterSlots(nil, m, false)
			for b.Loop() {
				buf = appendClusterSlots(buf[:0], m, false)
			}
			b.ReportMetric(float64(len(buf)), "bytes/reply")
		})
	}
}
