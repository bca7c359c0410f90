package resp

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/geocache/geocache"
)

// Settings that CONFIG SET changes while the server runs. Config gives
// their values at New; from then on each is an atomic of the Server, read
// where it applies, so a change takes effect at once for every
// connection: maxmemory (the node's budget, resized), requirepass (for the
// AUTHs that follow; connections authenticated stay so, as in Redis),
// maxclients (for the connections that follow), timeout (for every
// connection, idle ones included: pokeReaders), client-output-buffer-limit
// pubsub (checked at every message), slowlog-log-slower-than and
// slowlog-max-len (slowlog.go), notify-keyspace-events (the node's).
// CONFIG SET is all or nothing, as in Redis 7: every value is checked
// before any is applied, and the one change that can still fail (a
// budget the node refuses) is applied first. configMu serializes CONFIG
// SETs.

// noLimit is a pub/sub output limit that is off (Redis's 0): one no output
// reaches. resp.Config's zero means the default, so a caller that wants
// no limit passes this.
const noLimit = math.MaxInt64

// password is what the server keeps of requirepass: its SHA-256 digest
// (guard.go), nil when there is none.
type password = [32]byte

// initSettings copies Config's values into the live settings.
func (s *Server) initSettings() {
	s.maxClients.Store(int64(s.cfg.MaxClients))
	s.idleTimeout.Store(int64(s.cfg.IdleTimeout))
	s.psHard.Store(s.cfg.PubSubHardLimit)
	s.psSoft.Store(s.cfg.PubSubSoftLimit)
	s.psSoftTime.Store(int64(s.cfg.PubSubSoftTime))
	s.maxMemory.Store(s.nodeCfg.MaxBytes)
	s.setPassword(s.cfg.RequirePass)
	s.slowlog.init()
}

func (s *Server) setPassword(pass string) {
	if pass == "" {
		s.pass.Store(nil)
		s.fwdPass.Store(nil)
		return
	}
	s.fwdPass.Store(&pass) // the members of a region share it (forward.go)
	d := passwordDigest(pass)
	s.pass.Store(&d)
}

// passwordSet reports whether clients must AUTH.
func (s *Server) passwordSet() bool { return s.pass.Load() != nil }

func (s *Server) idle() time.Duration { return time.Duration(s.idleTimeout.Load()) }

// pokeReaders makes every connection waiting for a request look at its
// read deadline again (deadline.go), after the idle timeout changed: the
// read returns at once, and readDue arms the deadline the new timeout
// gives. A connection computing its deadline meanwhile sees readGen move
// and computes it again (armRead).
func (s *Server) pokeReaders() {
	s.readGen.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.reading.Load() {
			c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// limitText writes an output limit as CONFIG GET shows it: 0 for none.
func limitText(n int64) string {
	if n >= noLimit {
		return "0"
	}
	return strconv.FormatInt(n, 10)
}

// memToULL parses a memory value as Redis's memtoull: digits followed by
// an optional unit, any case, among b, k (1000), kb (1024), m (1000²), mb
// (1024²), g (1000³) and gb (1024³). Like Redis it accepts no digits as 0
// ("" and "mb" are 0) and reads a number too large for 64 bits as the
// largest (strtoull).
func memToULL(v []byte) (uint64, bool) {
	i := 0
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	var mul uint64
	switch strings.ToLower(string(v[i:])) {
	case "", "b":
		mul = 1
	case "k":
		mul = 1000
	case "kb":
		mul = 1 << 10
	case "m":
		mul = 1000 * 1000
	case "mb":
		mul = 1 << 20
	case "g":
		mul = 1000 * 1000 * 1000
	case "gb":
		mul = 1 << 30
	default:
		return 0, false
	}
	if i >= 128 { // Redis's buffer for the digits
		return 0, false
	}
	var n uint64
	for _, d := range v[:i] {
		if n > (math.MaxUint64-uint64(d-'0'))/10 {
			n = math.MaxUint64 // strtoull's ERANGE, which memtoull does not check
			break
		}
		n = n*10 + uint64(d-'0')
	}
	if n > math.MaxUint64/mul {
		return 0, false
	}
	return n * mul, true
}

// configValueError is a value CONFIG SET refuses: Redis's "CONFIG SET
// failed (possibly related to argument '<name>') - <why>".
type configValueError struct{ why string }

func (e *configValueError) Error() string { return e.why }

func rangeError(lo, hi int64) error {
	return &configValueError{"argument must be between " + strconv.FormatInt(lo, 10) + " and " + strconv.FormatInt(hi, 10) + " inclusive"}
}

var errNotParsed = &configValueError{"argument couldn't be parsed into an integer"}

// parseConfigInt parses an integer setting within [lo, hi], as Redis's
// numeric configs: string2ll, then the bounds.
func parseConfigInt(v []byte, lo, hi int64) (int64, error) {
	n, ok := parseInt(v)
	if !ok {
		return 0, errNotParsed
	}
	if n < lo || n > hi {
		return 0, rangeError(lo, hi)
	}
	return n, nil
}

// settables are the parameters CONFIG SET changes, each with its parser:
// it checks a value and returns what applies it (nothing is applied before
// every value of the command is checked). Every other parameter CONFIG GET
// shows answers "can't set immutable config". maxmemory is applied on its
// own, first (configSet).
var settables = map[string]func(s *Server, v []byte) (apply func(), err error){
	"maxclients": func(s *Server, v []byte) (func(), error) {
		n, err := parseConfigInt(v, 1, math.MaxUint32)
		return func() { s.maxClients.Store(n) }, err
	},
	"timeout": func(s *Server, v []byte) (func(), error) {
		n, err := parseConfigInt(v, 0, math.MaxInt32)
		return func() {
			s.idleTimeout.Store(int64(time.Duration(n) * time.Second))
			s.pokeReaders()
		}, err
	},
	"requirepass": func(s *Server, v []byte) (func(), error) {
		pass := string(v)
		return func() { s.setPassword(pass) }, nil
	},
	"client-output-buffer-limit": parseOutputLimits,
	"slowlog-log-slower-than": func(s *Server, v []byte) (func(), error) {
		n, err := parseConfigInt(v, -1, math.MaxInt64)
		return func() { s.slowlog.setSlowerThan(n) }, err
	},
	"slowlog-max-len": func(s *Server, v []byte) (func(), error) {
		n, err := parseConfigInt(v, 0, maxSlowlogLen)
		return func() { s.slowlog.maxLen.Store(n) }, err
	},
	"notify-keyspace-events": func(s *Server, v []byte) (func(), error) {
		classes := string(v)
		for _, ch := range classes {
			if !strings.ContainsRune(geocache.KeyspaceEventClasses, ch) {
				return nil, &configValueError{"Invalid event class character. Use '" + geocache.KeyspaceEventClasses + "'."}
			}
		}
		return func() { s.node.SetKeyspaceEvents(classes) }, nil
	},
}

// parseOutputLimits parses client-output-buffer-limit as Redis 7.0 does:
// groups of "<class> <hard> <soft> <seconds>", separated by single spaces
// (an empty value changes nothing), the sizes in memtoull's units. Only
// the pubsub class has limits here; normal and replica (slave) accept
// "0 0 0", what they are.
func parseOutputLimits(s *Server, v []byte) (func(), error) {
	if len(v) == 0 {
		return func() {}, nil
	}
	f := strings.Split(string(v), " ")
	if len(f)%4 != 0 {
		return nil, &configValueError{"Wrong number of arguments in buffer limit configuration."}
	}
	var apply []func()
	for j := 0; j < len(f); j += 4 {
		class := strings.ToLower(f[j])
		switch class {
		case "normal", "slave", "replica", "pubsub":
		default:
			return nil, &configValueError{"Invalid client class specified in buffer limit configuration."}
		}
		hard, okHard := memToULL([]byte(f[j+1]))
		soft, okSoft := memToULL([]byte(f[j+2]))
		secs, errSecs := int64(0), error(nil)
		if f[j+3] != "" { // strtoll reads "" as 0
			secs, errSecs = strconv.ParseInt(f[j+3], 10, 64)
		}
		if !okHard || !okSoft || errSecs != nil || secs < 0 {
			return nil, &configValueError{"Error in hard, soft or soft_seconds setting in buffer limit configuration."}
		}
		if class != "pubsub" {
			if hard != 0 || soft != 0 || secs != 0 {
				return nil, &configValueError{"only the pubsub class has limits here: " + class + " is 0 0 0"}
			}
			continue
		}
		limit := func(n uint64) int64 {
			if n == 0 || n >= noLimit {
				return noLimit
			}
			return int64(n)
		}
		h, sft := limit(hard), limit(soft)
		st := time.Duration(min(secs, int64(math.MaxInt64/time.Second))) * time.Second
		apply = append(apply, func() {
			s.psHard.Store(h)
			s.psSoft.Store(sft)
			s.psSoftTime.Store(int64(st))
		})
	}
	return func() {
		for _, a := range apply {
			a()
		}
	}, nil
}

// parseMaxMemory checks a maxmemory value; the node applies it (or refuses
// it) in configSet.
func (s *Server) parseMaxMemory(v []byte) (int64, error) {
	n, ok := memToULL(v)
	if !ok {
		return 0, &configValueError{"argument must be a memory value"}
	}
	lo := int64(1)
	if s.nodeCfg.MaxEntries > 0 {
		lo = 0
	}
	if n > math.MaxInt64 || int64(n) < lo {
		return 0, rangeError(lo, math.MaxInt64)
	}
	return int64(n), nil
}

// configSet is CONFIG SET name value [name value ...], all or nothing, with
// Redis 7.0's errors in its order: an unknown parameter, an immutable or
// repeated one (named as given), then each value in turn (the parameter
// named in lower case).
func (c *conn) configSet(pairs [][]byte) {
	switch {
	case len(pairs) < 2:
		c.wrongArity("config|set")
		return
	case len(pairs)%2 != 0:
		c.replyError(errSyntax)
		return
	}
	s := c.s
	known := map[string]bool{}
	for _, p := range s.configParams() {
		known[p[0]] = true
	}
	failed := func(name, why string) {
		c.replyError("ERR CONFIG SET failed (possibly related to argument '" + name + "') - " + why)
	}
	names := make([]string, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		name := strings.ToLower(string(pairs[i]))
		_, mutable := settables[name]
		switch {
		case !known[name]:
			c.replyError("ERR Unknown option or number of arguments for CONFIG SET - '" + string(pairs[i]) + "'")
			return
		case !mutable && name != "maxmemory":
			failed(string(pairs[i]), "can't set immutable config")
			return
		}
		for _, prev := range names {
			if prev == name {
				failed(string(pairs[i]), "duplicate parameter")
				return
			}
		}
		names = append(names, name)
	}
	s.configMu.Lock()
	defer s.configMu.Unlock()
	var applies []func()
	maxMemory := int64(-1)
	for i, name := range names {
		v := pairs[2*i+1]
		if name == "maxmemory" {
			n, err := s.parseMaxMemory(v)
			if err != nil {
				failed(name, err.Error())
				return
			}
			maxMemory = n
			continue
		}
		apply, err := settables[name](s, v)
		if err != nil {
			failed(name, err.Error())
			return
		}
		applies = append(applies, apply)
	}
	if maxMemory >= 0 {
		if err := s.node.SetMaxBytes(maxMemory); err != nil {
			why := err.Error()
			var ce *geocache.ConfigError
			if errors.As(err, &ce) {
				why = "argument " + ce.Reason
			}
			failed("maxmemory", why)
			return
		}
		s.maxMemory.Store(maxMemory)
	}
	for _, apply := range applies {
		apply()
	}
	c.replyOK()
}
