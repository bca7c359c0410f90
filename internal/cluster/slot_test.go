package cluster

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slotTable holds keys and the slots redis-server 7.0.15 (cluster mode)
// gave for them with CLUSTER KEYSLOT.
var slotTable = []struct {
	key  string
	slot int
}{
	{"", 0},
	{"foo", 12182},
	{"bar", 5061},
	{"hello", 866},
	{"123456789", 12739},
	{"a", 15495},
	{"{", 4092},
	{"}", 12090},
	{"{}", 15257},      // empty tag: the whole key
	{"}{", 12793},      // '}' before '{': no tag
	{"{}{a}", 13650},   // only the first '{' counts, and its tag is empty
	{"{a}{}", 15495},   // tag "a"
	{"a{b}c{d}", 3300}, // first tag only: "b"
	{"{{a}}", 10276},   // tag "{a"
	{"{a}}", 15495},    // tag "a"
	{"{{}}", 4092},     // tag "{"
	{"{user1000}.following", 3443},
	{"{user1000}.followers", 3443},
	{"user1000", 3443},
	{"foo{}{bar}", 8363},    // empty first tag: the whole key
	{"foo{{bar}}zap", 4015}, // tag "{bar"
	{"foo{bar}{zap}", 5061}, // tag "bar"
	{"a{", 14311},
	{"a}b{c}", 7365},
	{"{ }", 9314},
	{"x{y", 2740},
	{"\x00", 0},
	{"\x00\x01\x02\xff", 4002},
	{"{\x00}", 0},
	{"\xff\xfe{\x80}\x7f", 4488},
	{"é{ü}", 9552},
	{"ü", 9552},
	{strings.Repeat("k", 1000), 15858},
	{strings.Repeat("0123456789", 100) + "{tag}", 8338},
	{"{tag}", 8338},
	{"key:" + strings.Repeat("\xaa", 300), 15072},
}

func TestKeySlotTable(t *testing.T) {
	for _, tc := range slotTable {
		name := tc.key
		if len(name) > 24 {
			name = name[:24] + "..."
		}
		t.Run(strconv.Quote(name), func(t *testing.T) {
			if got := KeySlot(tc.key); got != tc.slot {
				t.Errorf("KeySlot(%q) = %d, redis says %d", tc.key, got, tc.slot)
			}
			if got := KeySlotBytes([]byte(tc.key)); got != tc.slot {
				t.Errorf("KeySlotBytes(%q) = %d, redis says %d", tc.key, got, tc.slot)
			}
		})
	}
}

// TestCRC16Check pins the table to CRC16/XMODEM's standard check value,
// the one Redis's own crc16 test uses.
func TestCRC16Check(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
}

// TestCRC16Slicing checks the eight-bytes-a-step crc16 against the plain
// byte-at-a-time loop, for every length from 0 to 80 and random bytes.
func TestCRC16Slicing(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for n := 0; n <= 80; n++ {
		for range 50 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			if got, want := crc16(b), crc16Bytewise(string(b)); got != want {
				t.Fatalf("crc16(%x) = %#04x, byte-at-a-time %#04x", b, got, want)
			}
		}
	}
}

func FuzzKeySlot(f *testing.F) {
	for _, tc := range slotTable {
		f.Add(tc.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		slot := KeySlot(key)
		if slot < 0 || slot >= Slots {
			t.Fatalf("KeySlot(%q) = %d", key, slot)
		}
		if want := int(crc16Bytewise(hashTag(key)) % Slots); slot != want {
			t.Fatalf("KeySlot(%q) = %d, byte-at-a-time %d", key, slot, want)
		}
		if KeySlotBytes([]byte(key)) != slot {
			t.Fatalf("KeySlotBytes(%q) != KeySlot", key)
		}
		// A key that holds a tag shares its slot with the bare tag.
		if tag := hashTag(key); tag != key && KeySlot("{"+tag+"}") != slot {
			t.Fatalf("KeySlot(%q) = %d but its tag %q gives %d", key, slot, tag, KeySlot("{"+tag+"}"))
		}
	})
}

func TestKeySlotBytesAllocs(t *testing.T) {
	key := []byte("{user1000}.following")
	if n := testing.AllocsPerRun(100, func() { KeySlotBytes(key) }); n != 0 {
		t.Fatalf("KeySlotBytes allocates %v times per call", n)
	}
}

// TestKeySlotLiveRedis compares KeySlot with CLUSTER KEYSLOT of a live
// cluster-mode redis-server for 10,000 random keys. It runs only when
// REDIS_CLUSTER_ADDR names one, e.g.
//
//	redis-server --port 7399 --cluster-enabled yes --cluster-config-file /tmp/nodes-7399.conf --save '' --appendonly no --daemonize yes
//	REDIS_CLUSTER_ADDR=127.0.0.1:7399 go test -run LiveRedis ./internal/cluster/
func TestKeySlotLiveRedis(t *testing.T) {
	addr := os.Getenv("REDIS_CLUSTER_ADDR")
	if addr == "" {
		t.Skip("REDIS_CLUSTER_ADDR not set")
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = randomKey(rng)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // only catches a hang
	// Pipeline every request, then read the replies in order.
	errc := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(c)
		for _, k := range keys {
			fmt.Fprintf(w, "*3\r\n$7\r\nCLUSTER\r\n$7\r\nKEYSLOT\r\n$%d\r\n%s\r\n", len(k), k)
		}
		errc <- w.Flush()
	}()
	r := bufio.NewReader(c)
	bad := 0
	for _, k := range keys {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(line, ":") {
			t.Fatalf("CLUSTER KEYSLOT %q: reply %q", k, line)
		}
		want, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			t.Fatal(err)
		}
		if got := KeySlot(k); got != want {
			bad++
			if bad <= 10 {
				t.Errorf("KeySlot(%q) = %d, redis says %d", k, got, want)
			}
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Fatalf("%d of %d keys differ", bad, len(keys))
	}
}

// randomKey returns a key of 0 to 40 bytes, from an alphabet rich in
// braces so that hash tags of every shape turn up, with binary bytes too.
func randomKey(rng *rand.Rand) string {
	const alphabet = "{{{}}}ab\x00\xff:"
	b := make([]byte, rng.IntN(41))
	for i := range b {
		if rng.IntN(4) == 0 {
			b[i] = byte(rng.IntN(256))
		} else {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
	}
	return string(b)
}

// BenchmarkCRC16 compares the slicing-by-8 CRC with the byte-at-a-time loop.
// crc16Bytewise is the plain byte-at-a-time CRC16, the reference crc16
// is tested against (Redis's loop).
func crc16Bytewise(b string) uint16 {
	var crc uint16
	for i := 0; i < len(b); i++ {
		crc = crc<<8 ^ crcTables[0][byte(crc>>8)^b[i]]
	}
	return crc
}

// hashTag is Redis's keyHashSlot loop (src/cluster.c) transcribed: the
// part of key that decides its slot. It is the reference KeySlot is
// fuzzed against.
func hashTag(key string) string {
	s := 0
	for ; s < len(key); s++ {
		if key[s] == '{' {
			break
		}
	}
	if s == len(key) {
		return key
	}
	e := s + 1
	for ; e < len(key); e++ {
		if key[e] == '}' {
			break
		}
	}
	if e == len(key) || e == s+1 {
		return key
	}
	return key[s+1 : e]
}

func BenchmarkCRC16(b *testing.B) {
	for _, n := range []int{8, 24, 100} {
		key := strings.Repeat("k", n)
		b.Run("slicing8/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				crc16(key)
			}
		})
		b.Run("bytewise/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				crc16Bytewise(key)
			}
		})
	}
}

func BenchmarkKeySlot(b *testing.B) {
	for _, key := range []string{"foo", "{user1000}.following", strings.Repeat("k", 100)} {
		b.Run(strconv.Itoa(len(key)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(key)))
			for b.Loop() {
				KeySlot(key)
			}
		})
	}
}
