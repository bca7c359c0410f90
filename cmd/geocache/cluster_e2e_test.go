package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/geocache/geocache/internal/clock"
)

// Black-box tests of a three-region cluster of real `geocache serve`
// processes (us, eu, ap), driven over the Redis protocol with go-redis and
// raw sockets. The binary is built once for all subtests (without -race).
func TestClusterE2E(t *testing.T) {
	e2eBinary(t) // one build for every subtest
	t.Run("Replication", testE2EReplication)
	t.Run("Wait", testE2EWait)
	t.Run("KillRestart", testE2EKillRestart)
	t.Run("Auth", testE2EAuth)
	t.Run("BadInput", testE2EBadInput)
	t.Run("MaxClients", testE2EMaxClients)
	t.Run("MaxMemory", testE2EMaxMemory)
	t.Run("GracefulShutdown", testE2EGracefulShutdown)
}

// e2eVersion is GEOCACHE VERSION key on c: [hlc, origin, expire-at], or
// nil if c does not hold key.
func e2eVersion(ctx context.Context, c *redis.Client, key string) ([]int64, error) {
	v, err := c.Do(ctx, "GEOCACHE", "VERSION", key).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(v) != 3 {
		return nil, fmt.Errorf("GEOCACHE VERSION %s = %v: want 3 elements", key, v)
	}
	out := make([]int64, 3)
	for i, x := range v {
		n, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("GEOCACHE VERSION %s = %v: element %d is %T", key, v, i, x)
		}
		out[i] = n
	}
	return out, nil
}

// e2eSame checks that every client holds key with value want (or, if want
// is nil, does not hold it) and, when held, with one version everywhere.
// It returns that version.
func e2eSame(ctx context.Context, cs []*redis.Client, names []string, key string, want *string) ([]int64, error) {
	var first []int64
	for i, c := range cs {
		got, err := c.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			if want != nil {
				return nil, fmt.Errorf("%s: GET %s = nil, want %q", names[i], key, *want)
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("%s: GET %s: %v", names[i], key, err)
		case want == nil:
			return nil, fmt.Errorf("%s: GET %s = %q, want nil", names[i], key, got)
		case got != *want:
			return nil, fmt.Errorf("%s: GET %s = %q, want %q", names[i], key, got, *want)
		}
		v, err := e2eVersion(ctx, c, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", names[i], err)
		}
		if first == nil {
			first = v
		} else if !slices.Equal(v, first) {
			return nil, fmt.Errorf("%s: GEOCACHE VERSION %s = %v, %s has %v", names[i], key, v, names[0], first)
		}
	}
	return first, nil
}

func e2ePtr(s string) *string { return &s }

// 1. Writes in one region reach the others: SET, DEL, EXPIRE, SET EX.
func testE2EReplication(t *testing.T) {
	c := startE2ECluster(t, nil)
	cs := c.clients()
	us, eu, ap := cs[0], cs[1], cs[2]
	ctx := t.Context()

	// SET in us is readable in eu and ap, with the same version.
	if err := us.Set(ctx, "greeting", "hello from us", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var ver []int64
	e2eEventually(t, e2eHang, "SET in us readable everywhere", func() (err error) {
		ver, err = e2eSame(ctx, cs, e2eRegions, "greeting", e2ePtr("hello from us"))
		return err
	})
	if ver[1] != 1 || ver[2] != -1 {
		t.Errorf("GEOCACHE VERSION greeting = %v: want origin 1 (us) and no expiry", ver)
	}

	// DEL in eu removes it everywhere.
	if n, err := eu.Del(ctx, "greeting").Result(); err != nil || n != 1 {
		t.Fatalf("DEL greeting in eu = %d, %v; want 1", n, err)
	}
	e2eEventually(t, e2eHang, "DEL in eu applied everywhere", func() error {
		_, err := e2eSame(ctx, cs, e2eRegions, "greeting", nil)
		return err
	})

	// EXPIRE in ap: the same expiry instant everywhere, TTL within a
	// second of 100 s everywhere.
	if err := us.Set(ctx, "session", "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e2eEventually(t, e2eHang, "session readable everywhere", func() error {
		_, err := e2eSame(ctx, cs, e2eRegions, "session", e2ePtr("abc"))
		return err
	})
	sent := time.Now()
	if ok, err := ap.Expire(ctx, "session", 100*time.Second).Result(); err != nil || !ok {
		t.Fatalf("EXPIRE session 100 in ap = %v, %v", ok, err)
	}
	answered := time.Now()
	e2eEventually(t, e2eHang, "EXPIRE in ap applied everywhere", func() (err error) {
		ver, err = e2eSame(ctx, cs, e2eRegions, "session", e2ePtr("abc"))
		if err == nil && (ver[1] != 3 || ver[2] == -1) {
			err = fmt.Errorf("GEOCACHE VERSION session = %v: want origin 3 (ap) and an expiry", ver)
		}
		return err
	})
	// Every bound below comes from clock readings taken around the
	// requests (the nodes share this machine's clock), not from how long
	// anything took: they hold however loaded the machine is. Versions and
	// PTTL are in whole milliseconds, TTL in whole seconds, and a node's
	// clock follows this process's wall clock within clock.StepThreshold
	// (it runs on the monotonic clock between checks of the wall clock).
	expireAt := time.UnixMilli(ver[2])
	if lo, hi := sent.Add(100*time.Second-time.Millisecond-clock.StepThreshold), answered.Add(100*time.Second+clock.StepThreshold); expireAt.Before(lo) || expireAt.After(hi) {
		t.Errorf("session expires at %v; want 100 s after the EXPIRE, between %v and %v", expireAt, lo, hi)
	}
	for i, cl := range cs {
		before := time.Now()
		ttl, err := cl.TTL(ctx, "session").Result()
		pttl, err2 := cl.PTTL(ctx, "session").Result()
		after := time.Now()
		if lo, hi := expireAt.Sub(after)-time.Second, expireAt.Sub(before)+time.Second; err != nil || ttl < lo || ttl > hi {
			t.Errorf("%s: TTL session = %v, %v; want %v to %v", e2eRegions[i], ttl, err, lo.Round(time.Second), hi.Round(time.Second))
		}
		if lo, hi := expireAt.Sub(after)-time.Millisecond, expireAt.Sub(before)+2*time.Millisecond; err2 != nil || pttl < lo || pttl > hi {
			t.Errorf("%s: PTTL session = %v, %v; want %v to %v", e2eRegions[i], pttl, err2, lo, hi)
		}
	}

	// PERSIST in eu removes the expiry everywhere.
	if ok, err := eu.Persist(ctx, "session").Result(); err != nil || !ok {
		t.Fatalf("PERSIST session in eu = %v, %v", ok, err)
	}
	e2eEventually(t, e2eHang, "PERSIST in eu applied everywhere", func() error {
		for i, cl := range cs {
			if ttl, err := cl.TTL(ctx, "session").Result(); err != nil || ttl != -1 {
				return fmt.Errorf("%s: TTL session = %v, %v; want -1 (no expiry)", e2eRegions[i], ttl, err)
			}
		}
		return nil
	})

	// SET EX in eu: held everywhere until its expiry instant, then gone
	// everywhere, not before. WAIT (on the connection that wrote it) tells
	// when every region has applied it; a region read after that and
	// before the expiry instant must serve it. On a machine so loaded that
	// the reads come after the expiry, that check has nothing to check.
	euConn := eu.Conn()
	defer euConn.Close()
	before := time.Now()
	if err := euConn.Do(ctx, "SET", "flash", "gone soon", "EX", "2").Err(); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if n, err := euConn.Wait(ctx, 2, e2eHang).Result(); err != nil || n != 2 {
		t.Fatalf("WAIT 2 after SET flash EX 2 = %d, %v; want 2", n, err)
	}
	var flashAt time.Time // when flash expires, once a region has shown it
	for i, cl := range cs {
		readStart := time.Now()
		v, err := e2eVersion(ctx, cl, "flash")
		readEnd := time.Now()
		switch {
		case err != nil:
			t.Fatalf("%s: %v", e2eRegions[i], err)
		case v == nil && readEnd.Before(before.Add(2*time.Second-time.Millisecond)):
			t.Errorf("%s does not hold flash, read before its expiry and after WAIT counted every region", e2eRegions[i])
		case v == nil:
			t.Logf("%s: flash read at %v, after its expiry (a loaded machine)", e2eRegions[i], readStart)
		case v[2] == -1:
			t.Errorf("%s: GEOCACHE VERSION flash = %v: no expiry", e2eRegions[i], v)
		case flashAt.IsZero():
			flashAt = time.UnixMilli(v[2])
			if lo, hi := before.Add(2*time.Second-time.Millisecond-clock.StepThreshold), after.Add(2*time.Second+clock.StepThreshold); flashAt.Before(lo) || flashAt.After(hi) {
				t.Errorf("%s: flash expires at %v; want 2 s after the SET, between %v and %v", e2eRegions[i], flashAt, lo, hi)
			}
		case !time.UnixMilli(v[2]).Equal(flashAt):
			t.Errorf("%s: flash expires at %v; another region has %v", e2eRegions[i], time.UnixMilli(v[2]), flashAt)
		}
	}
	expireAt = before.Add(2*time.Second - time.Millisecond) // the earliest it can expire
	if !flashAt.IsZero() {
		expireAt = flashAt
	}
	e2eEventually(t, e2eHang, "SET EX expired everywhere", func() error {
		for i, cl := range cs {
			n, err := cl.Exists(ctx, "flash").Result()
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("%s still holds flash %v after it was set to expire", e2eRegions[i], time.Since(expireAt))
			}
			if now := time.Now(); now.Before(expireAt) {
				t.Errorf("%s: flash gone at %v, %v before its expiry", e2eRegions[i], now, expireAt.Sub(now))
			}
		}
		_, err := e2eSame(ctx, cs, e2eRegions, "flash", nil)
		return err
	})
}

// 2. WAIT counts the regions that applied this connection's writes; ACK
// ALL times out while a region is paused; everything converges after.
func testE2EWait(t *testing.T) {
	c := startE2ECluster(t, nil)
	cs := c.clients()
	ctx := t.Context()
	conn := cs[0].Conn()
	defer conn.Close()

	if err := conn.Set(ctx, "w1", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Wait(ctx, 2, e2eHang).Result(); err != nil || n != 2 {
		t.Fatalf("WAIT 2 with every region up = %d, %v; want 2", n, err)
	}

	ap := c.nodes[2]
	ap.pause() // the cleanup's SIGKILL ends it even if it stays stopped

	if err := conn.Set(ctx, "w2", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// eu applies w2 (however long a loaded machine takes); ap cannot, so
	// WAIT 2 gives up after its timeout, not before, and counts eu alone.
	if n, err := conn.Wait(ctx, 1, e2eHang).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT 1 with ap paused = %d, %v; want at least 1", n, err)
	}
	// That it waits out its timeout first is internal/resp's
	// TestWaitCountsRegions; here, what it counts.
	n, err := conn.Wait(ctx, 2, 300*time.Millisecond).Result()
	if err != nil || n != 1 {
		t.Errorf("WAIT 2 300 with ap paused = %d, %v; want 1", n, err)
	}
	if got, err := cs[1].Get(ctx, "w2").Result(); err != nil || got != "v2" {
		t.Errorf("eu: GET w2 = %q, %v after WAIT counted it; want v2", got, err)
	}

	// A majority is still there.
	if err := conn.Do(ctx, "GEOCACHE", "ACK", "QUORUM", fmt.Sprint(e2eHang.Milliseconds())).Err(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Set(ctx, "w3", "v3", 0).Err(); err != nil {
		t.Errorf("SET with ACK QUORUM while ap is paused: %v", err)
	}

	// All is not.
	if err := conn.Do(ctx, "GEOCACHE", "ACK", "ALL", "400").Err(); err != nil {
		t.Fatal(err)
	}
	err = conn.Set(ctx, "w4", "v4", 0).Err()
	var rerr redis.Error
	if !errors.As(err, &rerr) || !strings.HasPrefix(err.Error(), "TIMEOUT write applied locally, not acknowledged by enough regions within 400ms") {
		t.Errorf("SET with ACK ALL while ap is paused: %v; want a -TIMEOUT error", err)
	}
	// The write stays applied and replicates.
	if got, err := conn.Get(ctx, "w4").Result(); err != nil || got != "v4" {
		t.Errorf("us: GET w4 after -TIMEOUT = %q, %v; want v4 (applied locally)", got, err)
	}
	e2eEventually(t, e2eHang, "w4 in eu", func() error {
		if got, err := cs[1].Get(ctx, "w4").Result(); err != nil || got != "v4" {
			return fmt.Errorf("eu: GET w4 = %q, %v", got, err)
		}
		return nil
	})

	ap.signal(syscall.SIGCONT)
	// Under the client's read timeout (e2eClientTimeout).
	if err := conn.Do(ctx, "GEOCACHE", "ACK", "ALL", fmt.Sprint(e2eHang.Milliseconds())).Err(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Set(ctx, "w5", "v5", 0).Err(); err != nil {
		t.Errorf("SET with ACK ALL after ap resumed: %v", err)
	}
	if n, err := conn.Wait(ctx, 2, e2eHang).Result(); err != nil || n != 2 {
		t.Errorf("WAIT 2 after ap resumed = %d, %v; want 2", n, err)
	}
	e2eEventually(t, e2eHang, "every write everywhere after ap resumed", func() error {
		for i := 1; i <= 5; i++ {
			if _, err := e2eSame(ctx, cs, e2eRegions, fmt.Sprint("w", i), e2ePtr(fmt.Sprint("v", i))); err != nil {
				return err
			}
		}
		return nil
	})
	c.waitConnected(t)
}

// 3. ap is killed with SIGKILL while us and eu keep writing and deleting,
// and restarted with the same flags: it rejoins and converges.
func testE2EKillRestart(t *testing.T) {
	c := startE2ECluster(t, nil)
	cs := c.clients()
	ctx := t.Context()

	var (
		mu       sync.Mutex
		want     = map[string]string{} // last value written of every key
		deleted  = map[string]bool{}   // keys deleted after their only write
		expiring = map[string]bool{}   // keys written with a TTL
	)
	// ap writes before its crash; these reach us and eu.
	for i := range 20 {
		k, v := fmt.Sprintf("ap:%d", i), fmt.Sprintf("ap-%d", i)
		if err := cs[2].Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	e2eEventually(t, e2eHang, "ap's writes in us and eu", func() error {
		for i := range 20 {
			k := fmt.Sprintf("ap:%d", i)
			if _, err := e2eSame(ctx, cs, e2eRegions, k, e2ePtr(want[k])); err != nil {
				return err
			}
		}
		return nil
	})

	const (
		perWriter = 350
		killAt    = 100 // ap is killed once both writers are here ...
		downUntil = 150 // ... before either goes past here,
		restartAt = 250 // and restarted before either goes past here.
	)
	var (
		reachedKill    = make(chan struct{}, 2)
		reachedRestart = make(chan struct{}, 2)
		killed         = make(chan struct{})
		restarted      = make(chan struct{})
		writeCtx, stop = context.WithCancel(ctx)
		errs           = make(chan error, 2)
		written        atomic.Int64
	)
	defer stop()
	gate := func(ch <-chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-writeCtx.Done():
			return writeCtx.Err()
		}
	}
	// Each writer writes its own keys; deletes one of its own keys every
	// 5 writes, and every 7 writes one of the other writer's keys that it
	// already holds (so the delete is newer than the write everywhere).
	writer := func(cl *redis.Client, region, other string) error {
		for i := range perWriter {
			switch i {
			case killAt:
				reachedKill <- struct{}{}
			case downUntil:
				if err := gate(killed); err != nil {
					return err
				}
			case restartAt:
				reachedRestart <- struct{}{}
				if err := gate(restarted); err != nil {
					return err
				}
			}
			k, v := fmt.Sprintf("%s:%d", region, i), fmt.Sprintf("%s-%d-%x", region, i, rand.Uint64())
			var ttl time.Duration
			if i%3 == 0 {
				ttl = 5 * time.Minute // the same expiry instant must reach every region
			}
			if err := cl.Set(writeCtx, k, v, ttl).Err(); err != nil {
				return fmt.Errorf("%s: SET %s: %w", region, k, err)
			}
			written.Add(1)
			mu.Lock()
			want[k] = v
			expiring[k] = ttl > 0
			mu.Unlock()
			if i%5 == 4 {
				k := fmt.Sprintf("%s:%d", region, i-2)
				if err := cl.Del(writeCtx, k).Err(); err != nil {
					return fmt.Errorf("%s: DEL %s: %w", region, k, err)
				}
				mu.Lock()
				deleted[k] = true
				mu.Unlock()
			}
			if i%7 == 3 && i >= 10 {
				k := fmt.Sprintf("%s:%d", other, i-10)
				err := cl.Get(writeCtx, k).Err()
				switch {
				case errors.Is(err, redis.Nil): // deleted, or not here yet
				case err != nil:
					return fmt.Errorf("%s: GET %s: %w", region, k, err)
				default:
					if err := cl.Del(writeCtx, k).Err(); err != nil {
						return fmt.Errorf("%s: DEL %s: %w", region, k, err)
					}
					mu.Lock()
					deleted[k] = true
					mu.Unlock()
				}
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	go func() { errs <- writer(cs[0], "us", "eu") }()
	go func() { errs <- writer(cs[1], "eu", "us") }()

	await := func(ch <-chan struct{}, what string) {
		t.Helper()
		for range 2 {
			select {
			case <-ch:
			case err := <-errs:
				t.Fatalf("a writer stopped before %s: %v", what, err)
			case <-time.After(e2eHang):
				t.Fatalf("writers did not reach %s", what)
			}
		}
	}
	ap := c.nodes[2]
	await(reachedKill, "the kill")
	ap.kill()
	if code := ap.cmd.ProcessState.ExitCode(); code != -1 {
		t.Fatalf("ap exit code %d after SIGKILL; want -1 (killed by a signal)", code)
	}
	atKill := written.Load()
	close(killed)
	await(reachedRestart, "the restart")
	t.Logf("%d writes while ap was down", written.Load()-atKill)
	if err := ap.start(); err != nil {
		t.Fatalf("restart ap with the same flags: %v", err)
	}
	close(restarted)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cs[2] = ap.client() // the old client's connections died with the process
	c.waitConnected(t)

	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	start := time.Now()
	var apLost []string
	e2eEventually(t, e2eHang, "every region converged after ap's restart", func() error {
		vals := make([][]*redis.StringCmd, len(cs))
		vers := make([][]*redis.Cmd, len(cs))
		sizes := make([]*redis.IntCmd, len(cs))
		for i, cl := range cs {
			p := cl.Pipeline()
			for _, k := range keys {
				vals[i] = append(vals[i], p.Get(ctx, k))
				vers[i] = append(vers[i], p.Do(ctx, "GEOCACHE", "VERSION", k))
			}
			sizes[i] = p.DBSize(ctx)
			if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("%s: %v", e2eRegions[i], err)
			}
		}
		apLost = apLost[:0]
		held := make([]int64, len(cs))
		for j, k := range keys {
			var ver string
			for i := range cs {
				got, err := vals[i][j].Result()
				switch {
				case errors.Is(err, redis.Nil):
					if !deleted[k] && i == 2 && strings.HasPrefix(k, "ap:") {
						// Written by ap's previous incarnation: us and eu
						// hold it, the restarted ap need not (see the
						// report: no stream resends it, anti-entropy does
						// not fill in keys only the peer holds).
						apLost = append(apLost, k)
						continue
					}
					if !deleted[k] {
						return fmt.Errorf("%s: GET %s = nil, want %q", e2eRegions[i], k, want[k])
					}
					continue
				case err != nil:
					return fmt.Errorf("%s: GET %s: %v", e2eRegions[i], k, err)
				case deleted[k]:
					return fmt.Errorf("%s: GET %s = %q; it was deleted", e2eRegions[i], k, got)
				case got != want[k]:
					return fmt.Errorf("%s: GET %s = %q, want %q", e2eRegions[i], k, got, want[k])
				}
				held[i]++
				if err := vers[i][j].Err(); err != nil {
					return fmt.Errorf("%s: GEOCACHE VERSION %s: %v", e2eRegions[i], k, err)
				}
				if v, _ := vers[i][j].Val().([]any); len(v) != 3 || (v[2] != int64(-1)) != expiring[k] {
					return fmt.Errorf("%s: GEOCACHE VERSION %s = %v; written with a TTL: %v", e2eRegions[i], k, vers[i][j].Val(), expiring[k])
				}
				v := fmt.Sprint(vers[i][j].Val())
				if ver == "" {
					ver = v
				} else if v != ver {
					return fmt.Errorf("%s: GEOCACHE VERSION %s = %s, another region has %s", e2eRegions[i], k, v, ver)
				}
			}
		}
		for i := range cs {
			if n := sizes[i].Val(); n != held[i] {
				return fmt.Errorf("%s: DBSIZE = %d, want %d", e2eRegions[i], n, held[i])
			}
		}
		return nil
	})
	t.Logf("converged %v after the restart: %d keys, %d deleted; ap's own pre-crash keys the restarted ap does not hold: %d of 20",
		time.Since(start).Round(time.Millisecond), len(keys), len(deleted), len(apLost))

	// ap takes writes again and they replicate; WAIT counts both regions.
	apConn := cs[2].Conn()
	defer apConn.Close()
	if err := apConn.Set(ctx, "after-restart", "ap is back", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := apConn.Wait(ctx, 2, e2eHang).Result(); err != nil || n != 2 {
		t.Errorf("ap: WAIT 2 after its restart = %d, %v; want 2", n, err)
	}
	e2eEventually(t, e2eHang, "ap's write after its restart everywhere", func() error {
		_, err := e2eSame(ctx, cs, e2eRegions, "after-restart", e2ePtr("ap is back"))
		return err
	})
}

// 4. --requirepass guards RESP; replication does not use it.
func testE2EAuth(t *testing.T) {
	const pass = "correct horse battery staple"
	c := startE2ECluster(t, func(i int, n *e2eNode) {
		n.password = pass
		if i == 1 {
			n.env = append(n.env, "GEOCACHE_REQUIREPASS="+pass) // eu takes it from the environment
		} else {
			n.args = append(n.args, "--requirepass", pass)
		}
	})
	ctx := t.Context()

	for _, n := range c.nodes {
		conn, err := net.Dial("tcp", n.addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(conn)
		for _, step := range []struct {
			args []string
			want string
		}{
			{[]string{"GET", "k"}, "-NOAUTH Authentication required."},
			{[]string{"SET", "k", "v"}, "-NOAUTH Authentication required."},
			{[]string{"AUTH", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled."},
			{[]string{"AUTH", "default", "wrong"}, "-WRONGPASS invalid username-password pair or user is disabled."},
			{[]string{"GET", "k"}, "-NOAUTH Authentication required."},
			{[]string{"AUTH", pass}, "+OK"},
			{[]string{"GET", "k"}, "(nil)"},
		} {
			if got := respCall(t, conn, r, step.args...); got != step.want {
				t.Errorf("%s: %q = %q, want %q", n.name, step.args, got, step.want)
			}
		}
		conn.Close()
	}

	// go-redis without a password, or with a wrong one.
	noPass := redis.NewClient(&redis.Options{Addr: c.nodes[0].addr, MaxRetries: -1})
	defer noPass.Close()
	if err := noPass.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("GET without a password: %v; want NOAUTH", err)
	}
	wrong := redis.NewClient(&redis.Options{Addr: c.nodes[0].addr, Password: "wrong", MaxRetries: -1})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("PING with a wrong password: %v; want WRONGPASS", err)
	}

	cs := c.clients()
	if got, err := cs[0].ConfigGet(ctx, "requirepass").Result(); err != nil || got["requirepass"] != "(hidden)" {
		t.Errorf("CONFIG GET requirepass = %v, %v; want (hidden)", got, err)
	}
	for i, cl := range cs {
		k, v := "from-"+e2eRegions[i], "written in "+e2eRegions[i]
		if err := cl.Set(ctx, k, v, 0).Err(); err != nil {
			t.Fatalf("%s: SET with the password: %v", e2eRegions[i], err)
		}
		e2eEventually(t, e2eHang, k+" replicated", func() error {
			_, err := e2eSame(ctx, cs, e2eRegions, k, e2ePtr(v))
			return err
		})
	}
}

// e2eReplies reads what the server sends on conn until it closes it (or
// d passes) and returns the reply lines. A reset counts as a close.
func e2eReplies(conn net.Conn, d time.Duration) (lines []string, closed bool, err error) {
	conn.SetReadDeadline(time.Now().Add(d))
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			lines = append(lines, strings.TrimSuffix(line, "\r\n"))
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return lines, true, nil
		default:
			return lines, false, err
		}
	}
}

// 5. Malformed and hostile input: the server answers an error or closes,
// keeps serving, and keeps replicating.
func testE2EBadInput(t *testing.T) {
	c := startE2ECluster(t, nil)
	cs := c.clients()
	ctx := t.Context()
	us := c.nodes[0]

	dial := func() net.Conn {
		t.Helper()
		conn, err := net.DialTimeout("tcp", us.addr, e2eHang)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	for _, tc := range []struct {
		name, send string
		reply      string // prefix of the first reply line; "" for none
		close      bool   // the server closes the connection
	}{
		{"garbage", "\x00\x01\xfe\xff garbage \x7f\r\n", "-ERR unknown command", false},
		{"bad multibulk count", "*x\r\n", "-ERR Protocol error", true},
		{"bad bulk length", "*1\r\n$-2\r\n", "-ERR Protocol error", true},
		{"huge bulk length", "*1\r\n$999999999999\r\n", "-ERR Protocol error: invalid bulk length", true},
		{"huge multibulk count", "*999999999999\r\n", "-ERR Protocol error", true},
		{"missing CRLF after bulk", "*1\r\n$4\r\nPINGxx", "-ERR Protocol error", true},
		{"unbalanced quotes", "SET \"a b\r\n", "-ERR Protocol error", true},
	} {
		conn := dial()
		if _, err := io.WriteString(conn, tc.send); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		if !tc.close {
			conn.(*net.TCPConn).CloseWrite()
		}
		lines, closed, err := e2eReplies(conn, e2eHang)
		if err != nil || !closed {
			t.Errorf("%s %q: connection not closed: %v (replies %q)", tc.name, tc.send, err, lines)
		}
		if len(lines) == 0 || !strings.HasPrefix(lines[0], tc.reply) {
			t.Errorf("%s %q: replies %q; want first %q...", tc.name, tc.send, lines, tc.reply)
		}
	}

	// A request cut off midway, then closed: nothing is stored.
	conn := dial()
	io.WriteString(conn, "*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nsent")
	conn.Close()

	// 10,000 connections of random bytes, 16 at a time: each gets only
	// error replies, and is closed once it has sent everything.
	const total, workers = 10000, 16
	var (
		next     atomic.Int64
		badMu    sync.Mutex
		bad      []string
		wg       sync.WaitGroup
		deadline = time.Now().Add(3 * time.Minute) // only catches a hang
	)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			buf := make([]byte, 512)
			fail := func(format string, args ...any) {
				badMu.Lock()
				bad = append(bad, fmt.Sprintf(format, args...))
				badMu.Unlock()
			}
			for next.Add(1) <= total && time.Now().Before(deadline) {
				msg := buf[:1+rng.IntN(len(buf))]
				for i := range msg {
					msg[i] = byte(rng.Uint32())
				}
				conn, err := net.DialTimeout("tcp", us.addr, e2eHang)
				if err != nil {
					fail("dial: %v", err)
					return
				}
				conn.SetDeadline(time.Now().Add(e2eHang))
				if _, err := conn.Write(msg); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
					fail("write %q: %v", msg, err)
				}
				conn.(*net.TCPConn).CloseWrite()
				lines, closed, err := e2eReplies(conn, e2eHang)
				conn.Close()
				if !closed {
					fail("sent %q: connection not closed after the client's FIN: %v (replies %q)", msg, err, lines)
				}
				for _, l := range lines {
					if !strings.HasPrefix(l, "-") {
						fail("sent %q: non-error reply %q", msg, l)
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	done := min(next.Load(), total)
	t.Logf("%d random-byte connections in %v", done, time.Since(start).Round(time.Millisecond))
	if done < total {
		t.Errorf("only %d of %d random-byte connections before the deadline (a hang?)", done, total)
	}
	for i, b := range bad {
		if i == 10 {
			t.Errorf("... and %d more", len(bad)-10)
			break
		}
		t.Error(b)
	}

	// Still serving, and still replicating.
	if !us.running() {
		t.Fatal("us exited")
	}
	if got, err := cs[0].Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING after the bad input = %q, %v", got, err)
	}
	if err := cs[0].Set(ctx, "still", "replicating", 0).Err(); err != nil {
		t.Fatal(err)
	}
	e2eEventually(t, e2eHang, "a write after the bad input replicated", func() error {
		_, err := e2eSame(ctx, cs, e2eRegions, "still", e2ePtr("replicating"))
		return err
	})
	if _, err := e2eSame(ctx, cs, e2eRegions, "half", nil); err != nil {
		t.Errorf("a half-sent SET was applied: %v", err)
	}
	if n, err := cs[0].DBSize(ctx).Result(); err != nil || n != 1 {
		t.Errorf("us: DBSIZE = %d, %v; want 1", n, err)
	}
	c.waitConnected(t)
}

// e2eStartSolo starts one node without peers, with extra flags.
func e2eStartSolo(t *testing.T, args ...string) *e2eNode {
	t.Helper()
	bin := e2eBinary(t)
	for attempt := 1; ; attempt++ {
		addrs := e2eFreeAddrs(t, 2)
		n := newE2ENode(t, bin, "solo", addrs[0], addrs[1], append([]string{"--region", "solo"}, args...)...)
		err := n.start()
		if err == nil {
			return n
		}
		if !errors.Is(err, errE2EAddrInUse) || attempt == 5 {
			t.Fatalf("start: %v", err)
		}
	}
}

// 6a. --max-clients: the connection over the limit is refused.
func testE2EMaxClients(t *testing.T) {
	n := e2eStartSolo(t, "--max-clients", "2")
	var conns []net.Conn
	open := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", n.addr, e2eHang)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		return conn, bufio.NewReader(conn)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 2 {
		conn, r := open()
		if got := respCall(t, conn, r, "PING"); got != "+PONG" {
			t.Fatalf("client %d: PING = %q", i+1, got)
		}
	}
	conn, _ := open()
	lines, closed, err := e2eReplies(conn, e2eHang)
	if !closed || len(lines) != 1 || lines[0] != "-ERR max number of clients reached" {
		t.Errorf("third client: replies %q, closed %v (%v); want \"-ERR max number of clients reached\" and a close", lines, closed, err)
	}

	// A slot frees when a client leaves.
	conns[0].Close()
	e2eEventually(t, e2eHang, "a new client after one left", func() error {
		conn, err := net.DialTimeout("tcp", n.addr, e2eHang)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(e2eHang))
		io.WriteString(conn, "PING\r\n")
		line, err := bufio.NewReader(conn).ReadString('\n')
		if line != "+PONG\r\n" {
			return fmt.Errorf("PING = %q, %v", line, err)
		}
		return nil
	})
}

// e2eInfo returns the fields of an INFO reply.
func e2eInfo(ctx context.Context, c *redis.Client, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.SplitSeq(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m, nil
}

// 6b. --max-memory: 5 MiB written into a 1 MiB budget stays within it in
// every region; the oldest keys are evicted.
func testE2EMaxMemory(t *testing.T) {
	const budget = 1 << 20
	c := startE2ECluster(t, func(_ int, n *e2eNode) { n.args = append(n.args, "--max-memory", "1MB") })
	cs := c.clients()
	ctx := t.Context()

	const valueSize, count = 4 << 10, 5 << 20 / (4 << 10)
	value := strings.Repeat("x", valueSize)
	for b := 0; b < count; b += 64 {
		p := cs[0].Pipeline()
		for i := b; i < b+64 && i < count; i++ {
			p.Set(ctx, fmt.Sprintf("big:%04d", i), value, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	last := fmt.Sprintf("big:%04d", count-1)
	e2eEventually(t, e2eHang, "the last write everywhere", func() error {
		_, err := e2eSame(ctx, cs, e2eRegions, last, e2ePtr(value))
		return err
	})
	for i, cl := range cs {
		info, err := e2eInfo(ctx, cl, "memory")
		if err != nil {
			t.Fatal(err)
		}
		used, _ := strconv.ParseInt(info["used_memory"], 10, 64)
		if info["maxmemory"] != strconv.Itoa(budget) || used <= 0 || used > budget {
			t.Errorf("%s: used_memory %s, maxmemory %s; want at most %d", e2eRegions[i], info["used_memory"], info["maxmemory"], budget)
		}
		n, err := cl.DBSize(ctx).Result()
		if err != nil || n*valueSize > budget || n < 10 {
			t.Errorf("%s: DBSIZE = %d, %v: want 10 to %d keys of %d bytes", e2eRegions[i], n, err, budget/valueSize, valueSize)
		}
		for j := range 10 {
			k := fmt.Sprintf("big:%04d", j)
			if err := cl.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
				t.Errorf("%s: GET %s = %v; want nil (evicted)", e2eRegions[i], k, err)
			}
		}
		stats, err := e2eInfo(ctx, cl, "stats")
		if err != nil {
			t.Fatal(err)
		}
		if ev, _ := strconv.Atoi(stats["evicted_keys"]); ev < count-budget/valueSize {
			t.Errorf("%s: evicted_keys %s; want at least %d", e2eRegions[i], stats["evicted_keys"], count-budget/valueSize)
		}
	}
}

// 7. SIGTERM stops a node cleanly and frees its ports; a new process on
// them rejoins the cluster.
func testE2EGracefulShutdown(t *testing.T) {
	c := startE2ECluster(t, nil)
	cs := c.clients()
	ctx := t.Context()
	eu := c.nodes[1]

	// A client connected to eu sees its connection closed.
	conn, err := net.Dial("tcp", eu.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if got := respCall(t, conn, r, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}

	start := time.Now()
	eu.signal(syscall.SIGTERM)
	if code := eu.waitExit(e2eHang); code != 0 {
		t.Fatalf("eu exit status %d after SIGTERM; want 0", code)
	}
	t.Logf("eu stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if !e2eLogHas(eu.logs.String(), "geocache stopped") {
		t.Error(`no "geocache stopped" log record`)
	}
	if lines, closed, err := e2eReplies(conn, e2eHang); !closed {
		t.Errorf("client connection still open after eu stopped: %q, %v", lines, err)
	}
	for _, a := range []string{eu.addr, eu.peerAddr} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s still held after eu stopped: %v", a, err)
		}
		ln.Close()
	}

	// The others go on; a write made while eu is away reaches it later.
	if err := cs[0].Set(ctx, "while-eu-away", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := eu.start(); err != nil {
		t.Fatalf("a new eu process on the same ports: %v", err)
	}
	cs[1] = eu.client()
	c.waitConnected(t)
	e2eEventually(t, e2eHang, "the new eu caught up", func() error {
		_, err := e2eSame(ctx, cs, e2eRegions, "while-eu-away", e2ePtr("x"))
		return err
	})
}
