package resp

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, CLIENT.

// redisVersion is the Redis version geocache reports to clients that gate
// features on it: the commands it serves follow Redis 7.2.
const redisVersion = "7.2.0"

func cmdPing(c *conn, args [][]byte) {
	if c.subscribed() && !c.resp3 {
		// As Redis: in RESP2 a subscriber's PONG must not look like a
		// message, so it is the array ["pong", message or ""].
		if len(args) > 2 {
			c.wrongArity("ping")
			return
		}
		c.replyArray(2)
		c.replyBulkString("pong")
		if len(args) == 2 {
			c.replyBulk(args[1])
		} else {
			c.replyBulkString("")
		}
		return
	}
	switch len(args) {
	case 1:
		c.replySimple("PONG")
	case 2:
		c.replyBulk(args[1])
	default:
		c.wrongArity("ping")
	}
}

func cmdEcho(c *conn, args [][]byte) { c.replyBulk(args[1]) }

func cmdQuit(c *conn, _ [][]byte) {
	c.replyOK()
	c.quit = true
}

func cmdSelect(c *conn, args [][]byte) {
	db, ok := parseInt(args[1])
	switch {
	case !ok:
		c.replyError(errNotInteger)
	case db != 0:
		c.replyError("ERR DB index is out of range")
	default:
		c.replyOK()
	}
}

const errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."

// checkAuth authenticates the connection as user with pass: the only user is
// "default", whose password is RequirePass (any password when there is
// none, as Redis's "nopass" default user).
func (c *conn) checkAuth(user, pass []byte) bool {
	if string(user) != "default" {
		return false
	}
	p := c.s.pass.Load()
	if p == nil {
		return true
	}
	return passwordMatches(*p, pass)
}

func cmdAuth(c *conn, args [][]byte) {
	var user, pass []byte
	switch len(args) {
	case 2:
		if !c.s.passwordSet() {
			c.replyError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		user, pass = []byte("default"), args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.replyError(errSyntax)
		return
	}
	if !c.checkAuth(user, pass) {
		c.authFailed()
		c.replyError(errWrongPass)
		return
	}
	c.authed = true
	c.replyOK()
}

func cmdHello(c *conn, args [][]byte) {
	var ver int64
	next := 1
	if len(args) >= 2 {
		v, ok := parseInt(args[1])
		if !ok {
			c.replyError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			c.replyError("NOPROTO unsupported protocol version")
			return
		}
		ver, next = v, 2
	}
	var user, pass, name []byte
	for j := next; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case equalFold(args[j], "auth") && more >= 2:
			user, pass = args[j+1], args[j+2]
			j += 2
		case equalFold(args[j], "setname") && more >= 1:
			name = args[j+1]
			j++
		default:
			c.replyError("ERR Syntax error in HELLO option '" + string(truncate(args[j], 128)) + "'")
			return
		}
	}
	if user != nil {
		if !c.checkAuth(user, pass) {
			c.authFailed()
			c.replyError(errWrongPass)
			return
		}
		c.authed = true
	}
	if c.needAuth() {
		c.replyError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if name != nil && !c.setName(name) {
		return
	}
	if ver != 0 {
		c.resp3 = ver == 3
		c.proto.Store(int32(ver))
	}
	proto := int64(2)
	if c.resp3 {
		proto = 3
	}
	c.replyMap(9)
	c.replyBulkString("server")
	c.replyBulkString("redis")
	c.replyBulkString("version")
	c.replyBulkString(redisVersion)
	c.replyBulkString("proto")
	c.replyInt(proto)
	c.replyBulkString("id")
	c.replyInt(c.id)
	c.replyBulkString("mode")
	c.replyBulkString("standalone")
	c.replyBulkString("role")
	c.replyBulkString("master")
	c.replyBulkString("modules")
	c.replyArray(0)
	c.replyBulkString("geocache_version")
	c.replyBulkString(buildVersion())
	c.replyBulkString("region")
	c.replyBulkString(c.s.nodeCfg.Region)
}

// validName reports whether a client name or library attribute has only
// the characters Redis allows: printable ASCII without spaces.
func validName(b []byte) bool {
	for _, ch := range b {
		if ch < '!' || ch > '~' {
			return false
		}
	}
	return true
}

func (c *conn) setName(name []byte) bool {
	if !validName(name) {
		c.replyError("ERR Client names cannot contain spaces, newlines or special characters.")
		return false
	}
	c.mu.Lock()
	c.name = string(name)
	c.mu.Unlock()
	return true
}

var clientHelp = []string{
	"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"GETNAME",
	"    Return the name of the current connection.",
	"ID",
	"    Return the ID of the current connection.",
	"INFO",
	"    Return information about the current client connection.",
	"KILL <ip:port>",
	"    Kill connection made from <ip:port>.",
	"KILL <option> <value> [<option> <value> [...]]",
	"    Kill connections. Options are:",
	"    * ADDR (<ip:port>|<unixsocket>:0)",
	"      Kill connections made from the specified address",
	"    * LADDR (<ip:port>|<unixsocket>:0)",
	"      Kill connections made to specified local address",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
	"      Kill connections by type.",
	"    * USER <username>",
	"      Kill connections authenticated by <username>.",
	"    * SKIPME (YES|NO)",
	"      Skip killing current connection (default: yes).",
	"LIST",
	"    Return information about client connections.",
	"REPLY (ON|OFF|SKIP)",
	"    Control the replies sent to the current connection.",
	"SETINFO <option> <value>",
	"    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
	"SETNAME <name>",
	"    Assign the name <name> to the current connection.",
	"NO-EVICT (ON|OFF)",
	"    Protect current client connection from eviction.",
	"HELP",
	"    Print this help.",
}

func cmdClient(c *conn, args [][]byte) {
	sub := args[1]
	arity := func(n int) bool {
		if len(args) != n {
			c.wrongArity("client|" + strings.ToLower(string(sub)))
			return false
		}
		return true
	}
	switch {
	case equalFold(sub, "id"):
		if arity(2) {
			c.replyInt(c.id)
		}
	case equalFold(sub, "setname"):
		if arity(3) && c.setName(args[2]) {
			c.replyOK()
		}
	case equalFold(sub, "getname"):
		if arity(2) {
			c.mu.Lock()
			name := c.name
			c.mu.Unlock()
			if name == "" {
				c.replyNull()
			} else {
				c.replyBulkString(name)
			}
		}
	case equalFold(sub, "setinfo"):
		if !arity(4) {
			return
		}
		attr, val := args[2], args[3]
		var dst *string
		switch {
		case equalFold(attr, "lib-name"):
			dst = &c.libName
		case equalFold(attr, "lib-ver"):
			dst = &c.libVer
		default:
			c.replyError("ERR Unrecognized option '" + string(truncate(attr, 128)) + "'")
			return
		}
		if !validName(val) {
			c.replyError("ERR " + string(attr) + " cannot contain spaces, newlines or special characters.")
			return
		}
		c.mu.Lock()
		*dst = string(val)
		c.mu.Unlock()
		c.replyOK()
	case equalFold(sub, "info"):
		if arity(2) {
			c.replyVerbatim(c.describe(time.Now()) + "\n")
		}
	case equalFold(sub, "list"):
		c.clientList(args)
	case equalFold(sub, "help"):
		if arity(2) {
			c.helpReply(clientHelp)
		}
	case c.clientOps(sub, args): // KILL, NO-EVICT, REPLY (ops_cmds.go)
	default:
		c.unknownSubcommand("client", sub)
	}
}

// clientList is CLIENT LIST [TYPE normal|master|replica|slave|pubsub]
// [ID id ...], with Redis 7.0's replies: the ID form lists the given
// clients in the order given (the ones that exist), a TYPE of master or
// replica lists none (geocache has no Redis replicas; its regions'
// links are not clients).
func (c *conn) clientList(args [][]byte) {
	conns := c.s.connsByID()
	var list []*conn
	switch {
	case len(args) == 2:
		list = conns
	case len(args) == 4 && equalFold(args[2], "type"):
		t := args[3]
		switch {
		case equalFold(t, "normal"), equalFold(t, "pubsub"):
			pubsub := equalFold(t, "pubsub")
			for _, o := range conns {
				if o.subscribed() == pubsub {
					list = append(list, o)
				}
			}
		case equalFold(t, "master"), equalFold(t, "replica"), equalFold(t, "slave"):
		default:
			c.replyError("ERR Unknown client type '" + string(t) + "'")
			return
		}
	case len(args) > 3 && equalFold(args[2], "id"):
		for _, a := range args[3:] {
			id, ok := parseInt(a)
			if !ok {
				c.replyError("ERR Invalid client ID")
				return
			}
			if i, found := slices.BinarySearchFunc(conns, id, func(o *conn, id int64) int { return cmp.Compare(o.id, id) }); found {
				list = append(list, conns[i])
			}
		}
	default:
		c.replyError(errSyntax)
		return
	}
	now := time.Now()
	var b strings.Builder
	for _, o := range list {
		b.WriteString(o.describe(now))
		b.WriteByte('\n')
	}
	c.replyVerbatim(b.String())
}

// describe returns the connection's CLIENT LIST line.
func (c *conn) describe(now time.Time) string {
	c.mu.Lock()
	name, libName, libVer, cmd := c.name, c.libName, c.libVer, c.lastCmd
	c.mu.Unlock()
	resp := strconv.Itoa(int(c.proto.Load()))
	last := time.Unix(0, c.lastActive.Load())
	var b strings.Builder
	b.WriteString("id=" + strconv.FormatInt(c.id, 10))
	b.WriteString(" addr=" + c.nc.RemoteAddr().String())
	b.WriteString(" laddr=" + c.nc.LocalAddr().String())
	b.WriteString(" name=" + name)
	b.WriteString(" age=" + strconv.FormatInt(int64(now.Sub(c.created)/time.Second), 10))
	b.WriteString(" idle=" + strconv.FormatInt(int64(now.Sub(last)/time.Second), 10))
	if c.subscribed() {
		b.WriteString(" flags=P db=0") // a pub/sub subscriber, as Redis
	} else {
		b.WriteString(" flags=N db=0")
	}
	b.WriteString(" cmd=" + cmd)
	b.WriteString(" ack=" + c.sess.Ack().String())
	b.WriteString(" resp=" + resp)
	b.WriteString(" lib-name=" + libName)
	b.WriteString(" lib-ver=" + libVer)
	return b.String()
}
