package resp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"sync"
	"time"
)

// Protection of the port: protected mode, AUTH hygiene, the shared budget
// of request buffers. See "Protecting the port" in doc.go.

// errDenied is Redis 7.0's reply to a non-local client in protected mode,
// byte for byte: the string in redis-server 7.0.15 (networking.c's
// clientAcceptHandler; read from the Debian binary with strings(1), since
// a machine with only loopback addresses cannot provoke it). Redis sends it
// and closes the connection.
const errDenied = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n"

// IsLoopback is the default Config.IsLocal, Redis's connIsLocal: a TCP
// client whose address is a loopback address (127.0.0.0/8, ::1, and
// ::ffff:127.0.0.0/104), or a Unix-socket client. Any other address —
// including one of an unknown network — is not local: protected mode fails
// closed.
func IsLoopback(remote net.Addr) bool {
	switch a := remote.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// passwordDigest is what the server keeps of RequirePass.
func passwordDigest(pass string) [sha256.Size]byte { return sha256.Sum256([]byte(pass)) }

// passwordMatches reports whether pass is the password whose digest is
// want. It compares SHA-256 digests in constant time: the time it takes
// depends on neither the length of pass nor on how much of it is right
// (comparing the passwords themselves would return early on a length
// mismatch, telling an attacker the length).
func passwordMatches(want [sha256.Size]byte, pass []byte) bool {
	got := sha256.Sum256(pass)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// Delays of failed AUTH attempts on one connection: the n-th failure's
// reply waits (n-1) × authDelayStep, at most authDelayMax. A brute force
// over one connection gets slower and slower; a client that mistyped once
// is not delayed at all.
const (
	authDelayStep = 10 * time.Millisecond
	authDelayMax  = time.Second
)

// authDelay is the delay before the reply to a connection's n-th failed
// AUTH (n ≥ 1).
func authDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	n = min(n, int(authDelayMax/authDelayStep)+1) // no overflow
	return min(time.Duration(n-1)*authDelayStep, authDelayMax)
}

// sleepCtx waits d, or until ctx ends (the server closes). It blocks only
// the calling connection's goroutine.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// addrLog rate-limits a log line per client address: at most one line per
// address per every, each line telling how many were suppressed since the
// previous one. It holds at most max addresses; when it is full of
// addresses seen within every, the lines of new addresses share one entry
// (so a flood from many addresses still logs at most one line per every
// for the lot).
type addrLog struct {
	every time.Duration
	max   int

	mu      sync.Mutex
	entries map[string]*addrLogEntry
}

type addrLogEntry struct {
	last       time.Time
	suppressed uint64
}

// addrLogOthers is the shared entry of addresses that found the table full.
const addrLogOthers = "(other addresses)"

func newAddrLog(every time.Duration, max int) *addrLog {
	return &addrLog{every: every, max: max, entries: make(map[string]*addrLogEntry)}
}

// allow reports whether a line about addr may be logged at now, and how
// many lines about it were suppressed since the last one; the key is the
// entry the line was counted against (addr, or addrLogOthers).
func (l *addrLog) allow(addr string, now time.Time) (ok bool, suppressed uint64, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[addr]
	key = addr
	if e == nil {
		if len(l.entries) >= l.max {
			for k, o := range l.entries {
				if now.Sub(o.last) >= l.every {
					delete(l.entries, k)
				}
			}
		}
		if len(l.entries) >= l.max {
			key = addrLogOthers
			e = l.entries[key]
		}
		if e == nil {
			e = &addrLogEntry{}
			l.entries[key] = e
			e.last = now
			return true, 0, key
		}
	}
	if now.Sub(e.last) < l.every {
		e.suppressed++
		return false, 0, key
	}
	suppressed, e.suppressed, e.last = e.suppressed, 0, now
	return true, suppressed, key
}

// clientHost is the address a client's log lines are limited by: its IP
// (a brute force opens connection after connection from new ports).
func clientHost(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	return a.String()
}

// reserveBuf takes n bytes of the MaxClientBuffer budget; it returns false,
// taking nothing, if the bytes held would then exceed limit (at most
// MaxClientBuffer).
func (s *Server) reserveBuf(n int, limit int64) bool {
	for {
		cur := s.bufBytes.Load()
		if cur+int64(n) > limit {
			return false
		}
		if s.bufBytes.CompareAndSwap(cur, cur+int64(n)) {
			return true
		}
	}
}

// releaseBuf gives back n bytes of the budget.
func (s *Server) releaseBuf(n int) {
	if n > 0 {
		s.bufBytes.Add(-int64(n))
	}
}

// The failed-AUTH log: one line per client address per authLogEvery, for
// at most authLogAddrs addresses at once.
const (
	authLogEvery = time.Minute
	authLogAddrs = 1024
)

// authFailed counts a failed AUTH on c, logs it (rate-limited per client
// address) and delays the reply by authDelay of the connection's failures
// so far. The delay blocks only this connection, and Close cuts it short.
func (c *conn) authFailed() {
	c.authFails++
	s := c.s
	total := s.authFailures.Add(1)
	remote := c.nc.RemoteAddr()
	if ok, suppressed, key := s.authLog.allow(clientHost(remote), time.Now()); ok {
		s.cfg.Logger.Warn("resp: failed AUTH", "remote", remote.String(), "id", c.id,
			"limited_by", key, "suppressed", suppressed, "auth_failures_total", total)
	}
	if d := authDelay(c.authFails); d > 0 {
		c.flush() // the replies before this one are not held back
		sleepCtx(s.ctx, d)
	}
}

// denyProtected refuses a non-local client in protected mode. It reports
// whether it did.
func (c *conn) denyProtected() bool {
	s := c.s
	if !s.cfg.ProtectedMode || s.passwordSet() || c.certVerified || s.cfg.IsLocal(c.nc.RemoteAddr()) {
		return false
	}
	s.rejectedConns.Add(1)
	s.logLimit("resp: protected mode: refused a non-local client (set --requirepass, or --protected-mode no)", "remote", c.nc.RemoteAddr())
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write([]byte(errDenied))
	return true
}
