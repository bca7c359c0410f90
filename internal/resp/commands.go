package resp

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// command is one entry of the command table.
type command struct {
	name  string // lower case, as Redis reports it
	arity int    // Redis's convention: n exactly n arguments (name included), -n at least n
	flags []string
	// first and last key positions and step, as COMMAND reports them
	firstKey, lastKey, step int
	group                   string
	since                   string
	summary                 string
	noAuth                  bool // allowed before AUTH
	// txControl: run at once inside MULTI rather than queued (MULTI,
	// EXEC, DISCARD, WATCH, QUIT), as in Redis.
	txControl bool
	// subscribedOK: allowed while a RESP2 connection is subscribed
	// ((P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT), as in Redis.
	subscribedOK bool
	// subcommands are a container's subcommands and their arities
	// (Redis's, the name and the subcommand included), for the errors of
	// subscribed mode (refuseSubscribed); the handler checks its own.
	subcommands map[string]int
	fn          func(c *conn, args [][]byte)
	id          int  // index in statEntries (per-command figures: latency.go)
	skipSlowlog bool // flags has skip_slowlog (EXEC): SLOWLOG logs its commands instead
	// subs are a container's per-subcommand statistics entries
	// ("client|list"), as Redis 7 counts them: only their name and id
	// are set (statsOf).
	subs map[string]*command
}

// commandList is the table of commands, in COMMAND's order. It is a
// function, not a variable, because handlers such as COMMAND read the
// table themselves.
func commandList() []*command {
	return []*command{
		// connection
		{name: "ping", arity: -1, flags: []string{"fast", "stale"}, group: "connection", since: "1.0.0", summary: "Returns the server's liveliness response.", subscribedOK: true, fn: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast", "stale"}, group: "connection", since: "1.0.0", summary: "Returns the given string.", fn: cmdEcho},
		{name: "quit", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, group: "connection", since: "1.0.0", summary: "Closes the connection.", noAuth: true, subscribedOK: true, txControl: true, fn: cmdQuit},
		{name: "hello", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, group: "connection", since: "6.0.0", summary: "Handshakes with the server: protocol version, authentication, client name.", noAuth: true, fn: cmdHello},
		{name: "auth", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, group: "connection", since: "1.0.0", summary: "Authenticates the connection.", noAuth: true, fn: cmdAuth},
		{name: "select", arity: 2, flags: []string{"fast", "stale"}, group: "connection", since: "1.0.0", summary: "Changes the selected database: only 0 exists.", fn: cmdSelect},
		{name: "client", arity: -2, flags: []string{"stale"}, group: "connection", since: "2.4.0", summary: "A container for client connection commands (ID, SETNAME, GETNAME, SETINFO, INFO, LIST, KILL, REPLY, NO-EVICT).", fn: cmdClient,
			subcommands: map[string]int{"id": 2, "setname": 3, "getname": 2, "setinfo": 4, "info": 2, "list": -2, "kill": -3, "reply": 3, "no-evict": 3, "help": 2}},
		{name: "reset", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}, group: "connection", since: "6.2.0", summary: "Resets the connection.", noAuth: true, subscribedOK: true, txControl: true, fn: cmdReset},
		// transactions
		{name: "multi", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, group: "transactions", since: "1.2.0", summary: "Starts a transaction.", txControl: true, fn: cmdMulti},
		{name: "exec", arity: 1, flags: []string{"noscript", "loading", "stale", "skip_slowlog"}, group: "transactions", since: "1.2.0", summary: "Executes all commands in a transaction: isolated on this node; each write replicates on its own.", txControl: true, fn: cmdExec},
		{name: "discard", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, group: "transactions", since: "2.0.0", summary: "Discards a transaction.", txControl: true, fn: cmdDiscard},
		{name: "watch", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, firstKey: 1, lastKey: -1, step: 1, group: "transactions", since: "2.2.0", summary: "Monitors changes to keys on this node to determine the execution of a transaction.", txControl: true, fn: cmdWatch},
		{name: "unwatch", arity: 1, flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, group: "transactions", since: "2.2.0", summary: "Forgets about watched keys of a transaction.", fn: cmdUnwatch},
		// cluster
		{name: "cluster", arity: -2, flags: []string{"stale"}, group: "cluster", since: "3.0.0", summary: "A container for Redis Cluster commands (SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT), answered from the region's slot map.", fn: cmdCluster,
			subcommands: map[string]int{"slots": 2, "shards": 2, "nodes": 2, "info": 2, "myid": 2, "keyslot": 3, "help": 2}},
		{name: "asking", arity: 1, flags: []string{"fast"}, group: "cluster", since: "3.0.0", summary: "Sent by cluster clients after an -ASK redirect: the next command is served here.", fn: cmdAsking},
		{name: "readonly", arity: 1, flags: []string{"fast", "stale"}, group: "cluster", since: "3.0.0", summary: "Enables read queries to a replica: every region node serves reads.", fn: cmdClusterOK},
		{name: "readwrite", arity: 1, flags: []string{"fast", "stale"}, group: "cluster", since: "3.0.0", summary: "Disables READONLY: every region node serves writes.", fn: cmdClusterOK},
		// strings and keys
		{name: "get", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Returns the string value of a key.", fn: cmdGet},
		{name: "set", arity: -3, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Sets the string value of a key, with NX|XX, GET, EX|PX|EXAT|PXAT|KEEPTTL.", fn: cmdSet},
		{name: "setex", arity: 4, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.0.0", summary: "Sets the value and the expiration in seconds of a key.", fn: cmdSetex},
		{name: "psetex", arity: 4, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.6.0", summary: "Sets the value and the expiration in milliseconds of a key.", fn: cmdPsetex},
		{name: "setnx", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Sets the value of a key only when the key does not exist.", fn: cmdSetnx},
		{name: "getset", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Returns the previous string value of a key after setting it to a new value.", fn: cmdGetset},
		{name: "strlen", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.2.0", summary: "Returns the length of a string value.", fn: cmdStrlen},
		{name: "append", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.0.0", summary: "Appends a string to the value of a key. Creates the key if it doesn't exist.", fn: cmdAppend},
		{name: "incr", arity: 2, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Increments the integer value of a key by one (increments made at once in several regions all count).", fn: cmdIncr},
		{name: "incrby", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Increments the integer value of a key by a number (increments made at once in several regions all count).", fn: cmdIncrby},
		{name: "incrbyfloat", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.6.0", summary: "Increments the floating point value of a key by a number, in Redis's long double arithmetic.", fn: cmdIncrbyfloat},
		{name: "decr", arity: 2, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Decrements the integer value of a key by one.", fn: cmdDecr},
		{name: "decrby", arity: 3, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Decrements a number from the integer value of a key.", fn: cmdDecrby},
		{name: "getrange", arity: 4, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.4.0", summary: "Returns a substring of the string stored at a key.", fn: cmdGetrange},
		{name: "substr", arity: 4, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "1.0.0", summary: "Returns a substring from a string value.", fn: cmdGetrange},
		{name: "setrange", arity: 4, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "2.2.0", summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", fn: cmdSetrange},
		{name: "getbit", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "bitmap", since: "2.2.0", summary: "Returns a bit value by offset.", fn: cmdGetbit},
		{name: "setbit", arity: 4, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: 1, step: 1, group: "bitmap", since: "2.2.0", summary: "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", fn: cmdSetbit},
		{name: "bitcount", arity: -2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "bitmap", since: "2.6.0", summary: "Counts the number of set bits (population counting) in a string.", fn: cmdBitcount},
		// hashes (hashes.go): merged field by field across regions
		{name: "hset", arity: -4, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Creates or modifies the value of a field in a hash (fields written at once in several regions all survive).", fn: cmdHset},
		{name: "hsetnx", arity: 4, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Sets the value of a field in a hash only when the field doesn't exist.", fn: cmdHsetnx},
		{name: "hget", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Returns the value of a field in a hash.", fn: cmdHget},
		{name: "hmset", arity: -4, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Sets the values of multiple fields.", fn: cmdHmset},
		{name: "hmget", arity: -3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Returns the values of all fields in a hash.", fn: cmdHmget},
		{name: "hincrby", arity: 4, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Increments the integer value of a field in a hash by a number (a read-modify-write: last writer wins across regions).", fn: cmdHincrby},
		{name: "hincrbyfloat", arity: 4, flags: []string{"write", "denyoom", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.6.0", summary: "Increments the floating point value of a field by a number (a read-modify-write: last writer wins across regions).", fn: cmdHincrbyfloat},
		{name: "hdel", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Deletes one or more fields and their values from a hash.", fn: cmdHdel},
		{name: "hlen", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Returns the number of fields in a hash.", fn: cmdHlen},
		{name: "hstrlen", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "3.2.0", summary: "Returns the length of the value of a field.", fn: cmdHstrlen},
		{name: "hkeys", arity: 2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Returns all fields in a hash.", fn: cmdHkeys},
		{name: "hvals", arity: 2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Returns all values in a hash.", fn: cmdHvals},
		{name: "hgetall", arity: 2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Returns all fields and values in a hash.", fn: cmdHgetall},
		{name: "hexists", arity: 3, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.0.0", summary: "Determines whether a field exists in a hash.", fn: cmdHexists},
		{name: "hrandfield", arity: -2, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "6.2.0", summary: "Returns one or more random fields from a hash.", fn: cmdHrandfield},
		{name: "hscan", arity: -3, flags: []string{"readonly"}, firstKey: 1, lastKey: 1, step: 1, group: "hash", since: "2.8.0", summary: "Iterates over fields and values of a hash (a hash is returned whole, with cursor 0).", fn: cmdHscan},
		{name: "getdel", arity: 2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "6.2.0", summary: "Returns the value of a key and deletes it (everywhere).", fn: cmdGetdel},
		{name: "getex", arity: -2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "string", since: "6.2.0", summary: "Returns the value of a key, changing its expiration with EX|PX|EXAT|PXAT|PERSIST.", fn: cmdGetex},
		{name: "mget", arity: -2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: -1, step: 1, group: "string", since: "1.0.0", summary: "Returns the values of the keys.", fn: cmdMget},
		{name: "mset", arity: -3, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: -1, step: 2, group: "string", since: "1.0.1", summary: "Sets the values of keys (each key is its own replicated write).", fn: cmdMset},
		{name: "msetnx", arity: -3, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: -1, step: 2, group: "string", since: "1.0.1", summary: "Sets the values of keys only when none of them exists here (all or nothing on this node; each key its own replicated write).", fn: cmdMsetnx},
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, group: "generic", since: "1.0.0", summary: "Deletes keys everywhere; returns how many existed here.", fn: cmdDel},
		{name: "unlink", arity: -2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: -1, step: 1, group: "generic", since: "4.0.0", summary: "Deletes keys everywhere, as DEL.", fn: cmdDel},
		{name: "exists", arity: -2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: -1, step: 1, group: "generic", since: "1.0.0", summary: "Counts the given keys that exist (repeats count again).", fn: cmdExists},
		{name: "type", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "1.0.0", summary: "Returns the type of a key: string or none.", fn: cmdType},
		{name: "expire", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "1.0.0", summary: "Sets a key's time to live in seconds, with NX|XX|GT|LT.", fn: cmdExpire},
		{name: "pexpire", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "2.6.0", summary: "Sets a key's time to live in milliseconds, with NX|XX|GT|LT.", fn: cmdPexpire},
		{name: "expireat", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "1.2.0", summary: "Sets a key's expiration to a Unix time in seconds, with NX|XX|GT|LT.", fn: cmdExpireat},
		{name: "pexpireat", arity: -3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "2.6.0", summary: "Sets a key's expiration to a Unix time in milliseconds, with NX|XX|GT|LT.", fn: cmdPexpireat},
		{name: "expiretime", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "7.0.0", summary: "Returns the expiration time of a key as a Unix timestamp.", fn: cmdExpiretime},
		{name: "pexpiretime", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "7.0.0", summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.", fn: cmdPexpiretime},
		{name: "touch", arity: -2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: -1, step: 1, group: "generic", since: "3.2.1", summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed.", fn: cmdTouch},
		{name: "ttl", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "1.0.0", summary: "Returns a key's time to live in seconds (-2 missing, -1 no expiry).", fn: cmdTTL},
		{name: "pttl", arity: 2, flags: []string{"readonly", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "2.6.0", summary: "Returns a key's time to live in milliseconds (-2 missing, -1 no expiry).", fn: cmdPTTL},
		{name: "persist", arity: 2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, group: "generic", since: "2.2.0", summary: "Removes a key's expiration.", fn: cmdPersist},
		{name: "object", arity: -2, flags: []string{}, group: "generic", since: "2.2.3", summary: "A container for object introspection commands (ENCODING, REFCOUNT; IDLETIME and FREQ are not tracked).", fn: cmdObject,
			subcommands: map[string]int{"encoding": 3, "refcount": 3, "idletime": 3, "freq": 3, "help": 2}},
		{name: "keys", arity: 2, flags: []string{"readonly"}, group: "generic", since: "1.0.0", summary: "Returns the keys on this node that match a pattern.", fn: cmdKeys},
		{name: "scan", arity: -2, flags: []string{"readonly"}, group: "generic", since: "2.8.0", summary: "Iterates over the keys on this node, with MATCH, COUNT and TYPE.", fn: cmdScan},
		{name: "randomkey", arity: 1, flags: []string{"readonly"}, group: "generic", since: "1.0.0", summary: "Returns a random key from this node.", fn: cmdRandomkey},
		{name: "rename", arity: 3, flags: []string{"write"}, firstKey: 1, lastKey: 2, step: 1, group: "generic", since: "1.0.0", summary: "Renames a key, overwriting the destination: a write of the destination, then a delete of the source.", fn: cmdRename},
		{name: "renamenx", arity: 3, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 2, step: 1, group: "generic", since: "1.0.0", summary: "Renames a key only when the destination does not exist here.", fn: cmdRenamenx},
		{name: "copy", arity: -3, flags: []string{"write", "denyoom"}, firstKey: 1, lastKey: 2, step: 1, group: "generic", since: "6.2.0", summary: "Copies the value and expiry of a key to a new key (DB 0 only, REPLACE).", fn: cmdCopy},
		// server
		{name: "time", arity: 1, flags: []string{"loading", "stale", "fast"}, group: "server", since: "2.6.0", summary: "Returns the server time.", fn: cmdTime},
		{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, group: "server", since: "1.0.0", summary: "Returns the number of keys on this node.", fn: cmdDbsize},
		{name: "flushall", arity: -1, flags: []string{"write"}, group: "server", since: "1.0.0", summary: "Removes every key on THIS node only; not replicated.", fn: cmdFlushall},
		{name: "flushdb", arity: -1, flags: []string{"write"}, group: "server", since: "1.0.0", summary: "Removes every key on THIS node only, as FLUSHALL.", fn: cmdFlushall},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, group: "server", since: "1.0.0", summary: "Returns information and statistics: server, clients, memory, persistence, stats, replication, cpu, errorstats, cluster, keyspace.", fn: cmdInfo},
		{name: "config", arity: -2, flags: []string{"admin", "stale"}, group: "server", since: "2.0.0", summary: "A container for server configuration commands (GET, RESETSTAT; SET of maxmemory, requirepass, maxclients, timeout, client-output-buffer-limit, slowlog-*, notify-keyspace-events).", fn: cmdConfig,
			subcommands: map[string]int{"get": -3, "set": -4, "resetstat": 2, "rewrite": 2, "help": 2}},
		{name: "command", arity: -1, flags: []string{"stale"}, group: "server", since: "2.8.13", summary: "Returns detailed information about commands (COUNT, DOCS, INFO, LIST).", fn: cmdCommand,
			subcommands: map[string]int{"count": 2, "list": -2, "info": -2, "docs": -2, "help": 2}},
		{name: "slowlog", arity: -2, flags: []string{}, group: "server", since: "2.2.12", summary: "A container for slow log commands (GET, LEN, RESET).", fn: cmdSlowlog,
			subcommands: map[string]int{"get": -2, "len": 2, "reset": 2, "help": 2}},
		{name: "memory", arity: -2, flags: []string{}, group: "server", since: "4.0.0", summary: "A container for memory diagnostics commands (USAGE: what a key counts against maxmemory).", fn: cmdMemory,
			subcommands: map[string]int{"usage": -3, "help": 2}},
		{name: "wait", arity: 3, flags: []string{}, group: "generic", since: "3.0.0", summary: "Blocks until this connection's writes are applied in numregions other regions, or the timeout in ms (0 = forever).", fn: cmdWait},
		// pub/sub
		{name: "subscribe", arity: -2, flags: []string{"pubsub", "noscript", "loading", "stale"}, group: "pubsub", since: "2.0.0", summary: "Listens for messages published to channels, in every region.", subscribedOK: true, fn: cmdSubscribe},
		{name: "unsubscribe", arity: -1, flags: []string{"pubsub", "noscript", "loading", "stale"}, group: "pubsub", since: "2.0.0", summary: "Stops listening to channels (to all of them without arguments).", subscribedOK: true, fn: cmdUnsubscribe},
		{name: "psubscribe", arity: -2, flags: []string{"pubsub", "noscript", "loading", "stale"}, group: "pubsub", since: "2.0.0", summary: "Listens for messages published to channels that match patterns, in every region.", subscribedOK: true, fn: cmdPsubscribe},
		{name: "punsubscribe", arity: -1, flags: []string{"pubsub", "noscript", "loading", "stale"}, group: "pubsub", since: "2.0.0", summary: "Stops listening to patterns (to all of them without arguments).", subscribedOK: true, fn: cmdPunsubscribe},
		{name: "publish", arity: 3, flags: []string{"pubsub", "loading", "stale", "fast"}, group: "pubsub", since: "2.0.0", summary: "Posts a message to a channel: it reaches the subscribers of every region, at most once, in order per publishing node. Returns the receivers on this node.", fn: cmdPublish},
		{name: "pubsub", arity: -2, flags: []string{}, group: "pubsub", since: "2.8.0", summary: "A container for pub/sub introspection commands (CHANNELS, NUMSUB, NUMPAT), about this node's subscribers.", fn: cmdPubsub,
			subcommands: map[string]int{"channels": -2, "numsub": -2, "numpat": 2, "help": 2}},
		// geocache
		{name: "geocache", arity: -2, flags: []string{"stale"}, group: "geocache", since: "0.1.0", summary: "geocache's own commands: REGIONS, ACK, VERSION, HELP.", fn: cmdGeocache,
			subcommands: map[string]int{"regions": 2, "ack": -2, "version": 3, "help": 2}},
	}
}

var (
	commands   []*command
	commandMap map[string]*command
	// statEntries are what INFO commandstats and latencystats report, in
	// their order: every command, each container followed by its
	// subcommands' entries.
	statEntries []*command
)

func init() {
	commands = commandList()
	commandMap = make(map[string]*command, len(commands))
	for _, cmd := range commands {
		cmd.skipSlowlog = slices.Contains(cmd.flags, "skip_slowlog")
		commandMap[cmd.name] = cmd
		cmd.id = len(statEntries)
		statEntries = append(statEntries, cmd)
		if cmd.subcommands == nil {
			continue
		}
		cmd.subs = make(map[string]*command, len(cmd.subcommands))
		for _, name := range slices.Sorted(maps.Keys(cmd.subcommands)) {
			sub := &command{name: cmd.name + "|" + name, id: len(statEntries)}
			cmd.subs[name] = sub
			statEntries = append(statEntries, sub)
		}
	}
}

// maxSubcommandName bounds the subcommand names statsOf looks up.
const maxSubcommandName = 16

// statsOf returns the entry a call of cmd with args counts in: its
// subcommand's for a container called with a subcommand it has (in any
// case), as Redis 7 counts them, otherwise cmd's. It does not allocate.
func (cmd *command) statsOf(args [][]byte) *command {
	if cmd.subs == nil || len(args) < 2 || len(args[1]) > maxSubcommandName {
		return cmd
	}
	var lower [maxSubcommandName]byte
	for i, c := range args[1] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if sub := cmd.subs[string(lower[:len(args[1])])]; sub != nil {
		return sub
	}
	return cmd
}

const maxCommandName = 32

// lookupCommand finds the command named by name, in any case, without
// allocating.
func lookupCommand(name []byte) *command {
	if len(name) > maxCommandName {
		return nil
	}
	var lower [maxCommandName]byte
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return commandMap[string(lower[:len(name)])]
}

func (cmd *command) arityOK(n int) bool { return arityFits(cmd.arity, n) }

// arityFits reports whether n arguments fit arity, in Redis's convention.
func arityFits(arity, n int) bool {
	if arity >= 0 {
		return n == arity
	}
	return n >= -arity
}

// exec runs one command. Its replies are dropped while CLIENT REPLY says
// so (execSilenced); otherwise this wrapper is inlined, and a command pays
// three flag tests for CLIENT REPLY.
func (c *conn) exec(args [][]byte) {
	if c.replyOff || c.skipThis || c.skipNext {
		c.execSilenced(args)
		return
	}
	c.execCommand(args)
}

// execSilenced runs a command while CLIENT REPLY is OFF, or after a SKIP:
// whatever the command appends to out is cut off again (flush drops it
// too, if the command flushes), pub/sub confirmations excepted (confirm).
// As Redis's resetClient, a SKIP drops the reply of the command after it,
// whatever that command is: skipNext, set by CLIENT REPLY SKIP, becomes
// skipThis when the next command starts.
func (c *conn) execSilenced(args [][]byte) {
	if c.skipNext {
		c.skipThis, c.skipNext = true, false
	}
	if c.replyOff || c.skipThis {
		c.mute, c.muteAt = true, len(c.out)
	}
	c.execCommand(args)
	c.unmute()
	c.skipThis, c.skipNext = c.skipNext, false
}

// execCommand runs one command, with Redis's order of checks: unknown
// command, then arity, then authentication, then cluster redirection
// (Config.Redirect, redirect.go), then subscribed mode (RESP2 only).
func (c *conn) execCommand(args [][]byte) {
	c.errMark = c.errs
	asking := c.asking // for this command only (ASKING sets it again)
	c.asking = false
	cmd := lookupCommand(args[0])
	if cmd == nil {
		c.failTx()
		c.unknownCommand(args)
		return
	}
	if !cmd.arityOK(len(args)) {
		c.s.rejectedCalls[cmd.id].Add(1)
		if cmd.name == "exec" { // Redis aborts the transaction, open or not
			c.tx, c.watched = nil, nil
			c.replyError("EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command")
			return
		}
		c.failTx()
		c.wrongArity(cmd.name)
		return
	}
	if !cmd.noAuth && c.needAuth() {
		c.s.rejectedCalls[cmd.statsOf(args).id].Add(1)
		c.failTx()
		c.replyError("NOAUTH Authentication required.")
		return
	}
	if (c.s.cfg.Redirect || c.s.cfg.Forward || c.redirect) && routed(cmd) && !c.route(cmd, args, asking) {
		return
	}
	if !cmd.subscribedOK && !c.resp3 && c.subscribed() {
		c.s.rejectedCalls[cmd.statsOf(args).id].Add(1)
		c.refuseSubscribed(cmd, args)
		return
	}
	if c.ps != nil && c.ps.q != nil && (len(c.out) > 0 || c.fwd != nil && len(c.fwd.replies) > 0) && !c.flush() {
		// Subscribed (RESP3 runs any command then): what the command
		// publishes to this very connection — PUBLISH, a keyspace event
		// of its write — is queued at once, so the replies before it are
		// queued first, as Redis writes them in that order.
		return
	}
	if c.tx != nil && !cmd.txControl {
		c.queue(cmd, args)
		return
	}
	c.run(cmd, args)
}

// failTx dooms the open transaction, if any: EXEC will abort it, as Redis
// does after a command refused while queuing.
func (c *conn) failTx() {
	if c.tx != nil {
		c.tx.failed = true
	}
}

// run executes a command that passed exec's checks (or that EXEC runs from
// its queue). While a transaction runs on the server, a command with keys
// holds their stripes, unless EXEC holds them all already (multi.go);
// otherwise it only marks itself running, which EXEC waits out.
func (c *conn) run(cmd *command, args [][]byte) {
	c.s.commands.Add(1)
	c.noteCommand(cmd)
	if !c.inExec && cmd.firstKey > 0 {
		if c.s.locks.enter(&c.running) {
			defer c.running.Store(false)
		} else {
			c.keyBuf = commandKeys(c.keyBuf[:0], cmd, args)
			c.stripeBuf = c.s.locks.stripesOf(c.stripeBuf[:0], c.keyBuf...)
			clear(c.keyBuf) // do not pin the request's buffer
			stripes := c.stripeBuf
			c.s.locks.lock(stripes)
			defer c.s.locks.unlock(stripes)
		}
	}
	cmd.fn(c, args)
	st := cmd.statsOf(args)
	d := c.s.latency.observe(c, st)
	if c.errs != c.errMark { // as Redis: an error since the last command ended
		c.errMark = c.errs
		c.s.failedCalls[st.id].Add(1)
	}
	if d >= time.Duration(c.s.slowlog.slowerThan.Load()) {
		c.s.slowlog.add(c, cmd, args, d) // the one comparison a fast command pays
	}
}

// noteCommand records the last command for CLIENT LIST. A client that
// repeats a command does not take the connection's lock again.
func (c *conn) noteCommand(cmd *command) {
	if c.noted == cmd {
		return
	}
	c.noted = cmd
	c.mu.Lock()
	c.lastCmd = cmd.name
	c.mu.Unlock()
}

func (c *conn) wrongArity(name string) {
	c.replyError("ERR wrong number of arguments for '" + name + "' command")
}

// unknownCommand words the error as Redis does: the name as sent and up to
// 128 bytes of its arguments.
func (c *conn) unknownCommand(args [][]byte) {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(truncate(args[0], 128))
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		a = truncate(a, 128-n)
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
		n += len(a) + 3
	}
	c.replyError(b.String())
}

func (c *conn) unknownSubcommand(cmd string, sub []byte) {
	c.replyError("ERR unknown subcommand '" + string(truncate(sub, 128)) + "'. Try " + strings.ToUpper(cmd) + " HELP.")
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII word s in any
// case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// helpReply writes a HELP reply: lines of text as simple strings.
func (c *conn) helpReply(lines []string) {
	c.replyArray(len(lines))
	for _, l := range lines {
		c.replySimple(l)
	}
}
