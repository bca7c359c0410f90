// Package resp is the Redis-protocol (RESP) front end of a geocache Node:
// any Redis client — redis-cli, go-redis, ioredis, redis-py — talks to a
// geocache node through it.
//
//	s, err := resp.New(resp.Config{Node: node, RequirePass: pass})
//	go s.Serve(ln)    // returns nil after Close
//	...
//	s.Close()         // closes every client and waits for them
//
// Each connection has its own geocache.Session, so WAIT waits for that
// connection's writes and GEOCACHE ACK sets that connection's
// acknowledgement level. A connection speaks RESP2 until HELLO 3 switches
// it to RESP3 (nulls, maps, sets and verbatim strings); HELLO 2 switches
// back. Requests may be pipelined, inline ("PING\r\n", with Redis's
// quoting) or multibulk; keys and values are binary-safe.
//
// # Commands
//
// Connection: PING [msg], ECHO, QUIT, HELLO [2|3 [AUTH user pass]
// [SETNAME name]], AUTH [user] pass, SELECT 0, RESET, CLIENT ID | SETNAME |
// GETNAME | SETINFO | INFO | LIST [TYPE t] [ID id ...] | KILL | REPLY |
// NO-EVICT | HELP.
//
// Keys: GET, SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL], SETEX,
// PSETEX, SETNX, GETDEL, GETEX [EX|PX|EXAT|PXAT|PERSIST], MGET, MSET, DEL,
// UNLINK, EXISTS, TYPE, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with Redis
// 7's NX|XX|GT|LT: no expiry counts as an infinite TTL), TTL, PTTL,
// PERSIST, EXPIRETIME, PEXPIRETIME, TOUCH; GETSET, STRLEN, APPEND,
// GETRANGE, SUBSTR, SETRANGE, GETBIT, SETBIT, BITCOUNT [start end
// [BYTE|BIT]]; MSETNX; KEYS pattern, SCAN cursor [MATCH pattern] [COUNT n]
// [TYPE type], RANDOMKEY, RENAME, RENAMENX, COPY [DB 0] [REPLACE].
//
// Hashes (hashes.go): HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HGETALL,
// HKEYS, HVALS, HLEN, HEXISTS, HSTRLEN, HINCRBY, HINCRBYFLOAT, HRANDFIELD
// [count [WITHVALUES]], HSCAN cursor [MATCH pattern] [COUNT n]. A hash
// merges field by field across regions (geocache.Node.UpdateHash); every
// string command on a hash, and every hash command on a string, answers
// "-WRONGTYPE Operation against a key holding the wrong kind of value".
//
// Pub/sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
// PUBSUB CHANNELS | NUMSUB | NUMPAT | HELP. A message published on any node
// reaches the subscribers of every region (geocache.Node.Publish), at most
// once, in order per publishing node; PUBLISH answers the receivers on
// this node, PUBSUB describes this node's subscribers. Subscribed mode is
// Redis 7.0's (pubsub_cmds.go).
//
// Cluster (a region of several nodes, geocache serve --gossip-addr):
// CLUSTER SLOTS | SHARDS | NODES | INFO | MYID | KEYSLOT | HELP, ASKING,
// READONLY, READWRITE; a node of a region of one answers them as a Redis
// without cluster support.
//
// Server: TIME, DBSIZE, FLUSHALL and FLUSHDB [ASYNC|SYNC], INFO [section ...]
// (server, clients, memory, persistence, stats, replication, cpu,
// errorstats, cluster, keyspace; commandstats and latencystats with INFO
// all, as in Redis), CONFIG GET pattern ..., CONFIG SET name value ...
// (settings.go), COMMAND [COUNT | LIST | INFO | DOCS], SLOWLOG GET | LEN |
// RESET | HELP (slowlog.go), MEMORY USAGE | HELP, OBJECT ENCODING |
// REFCOUNT | IDLETIME | FREQ | HELP (ops_cmds.go), WAIT numregions
// timeout.
//
// geocache's own: GEOCACHE REGIONS (this node and every replication peer:
// region, node, link state, lag in writes, backlog bytes, RTT, clock
// offset), GEOCACHE ACK [LOCAL|QUORUM|ALL [timeout-ms]], GEOCACHE VERSION
// key ([hlc, origin node id, expire-at Unix ms or -1] for a live entry;
// [hlc, origin node id, -1, "deleted"] for a delete or an expiry the node
// remembers as a tombstone; nil if neither), GEOCACHE HELP.
//
// Replies and error messages follow Redis 7 (the package's command script
// test runs against a real Redis too): "-ERR wrong number of arguments for
// 'get' command", "-ERR unknown command 'foo', with args beginning with:
// 'a' ", "-ERR syntax error", "-ERR value is not an integer or out of
// range", "-ERR invalid expire time in 'set' command", "-NOAUTH
// Authentication required.", "-WRONGPASS invalid username-password pair or
// user is disabled.", "-NOPROTO unsupported protocol version". Commands
// not listed (lists, sets, sorted sets, streams, ...) are unknown
// commands.
//
// MULTI/EXEC runs its queue isolated on this node: no other client's
// command on a key of the transaction (or a WATCHed key) runs in between;
// each write then replicates on its own (multi.go).
//
// # Where geocache differs from Redis
//
//   - Writes are versioned and replicated to every region, last writer
//     wins. Conditional writes (SET NX|XX|GET|KEEPTTL, SETNX, GETDEL, GETEX
//     with an option, the EXPIRE conditions, PERSIST) are atomic on this
//     node (one Session.Update under the key's lock); another region may
//     hold a concurrent write, which last-writer-wins then decides.
//     APPEND, SETRANGE and SETBIT are such read-modify-writes too: the
//     result travels as a whole value, so of two made at the same time in
//     two regions only the later survives.
//   - FLUSHALL and FLUSHDB remove the keys of THIS node only; they are not
//     replicated (geocache's Node.FlushLocal). Run them in every region to
//     empty the cache everywhere.
//   - DEL, UNLINK and GETDEL replicate the delete even for a key absent
//     here — another region may hold it, and a cache invalidation must
//     reach it there; they count (or return) what existed here.
//   - MSET writes each pair as its own replicated write: other clients may
//     see some pairs before the others. Sizes are checked first, so a pair
//     the node would refuse leaves nothing written.
//   - WAIT numregions timeout counts regions, not replicas: it blocks until
//     this connection's writes so far are applied in numregions other
//     regions, or for timeout ms (0: without limit), and returns how many
//     other regions have applied them. A client that disconnects while
//     blocked is dropped at once.
//   - GEOCACHE ACK QUORUM|ALL makes the connection's writes (and each
//     multi-key command's last write, which covers the ones before it)
//     wait for a majority of regions or all of them. A write not
//     acknowledged within the connection's ack timeout — 5 s unless GEOCACHE
//     ACK gave another — answers "-TIMEOUT write applied locally, not
//     acknowledged by enough regions within 5s (...)": it stays applied here
//     and keeps replicating.
//   - SELECT accepts only database 0 ("-ERR DB index is out of range").
//   - CONFIG GET reports maxmemory, maxmemory-policy (allkeys-lru),
//     maxclients, timeout, requirepass, proto-max-bulk-len,
//     client-query-buffer-limit, databases, save, appendonly,
//     client-output-buffer-limit, slowlog-log-slower-than, slowlog-max-len,
//     notify-keyspace-events and geocache-* settings. It never reveals the
//     password: requirepass reads "(hidden)" when one is set (Redis shows
//     it). CONFIG SET changes maxmemory (the node's budget, resized at
//     once; 0 only with an entry limit), requirepass, maxclients, timeout,
//     client-output-buffer-limit (the pubsub class; normal and replica stay
//     "0 0 0"), slowlog-log-slower-than, slowlog-max-len (at most 10,000)
//     and notify-keyspace-events, all or nothing; every other parameter
//     answers Redis's "can't set immutable config". RESETSTAT resets what
//     INFO counts, as Redis does, but not the counters the admin
//     endpoint's /metrics serves; REWRITE answers an error.
//   - OBJECT ENCODING answers from the value alone (int, embstr up to 44
//     bytes, raw; listpack or hashtable by Redis's thresholds for a hash's
//     fields now): Redis answers raw for a short string APPEND or SETRANGE
//     made, and hashtable for a hash that once grew past them.
//   - Hash replies list fields in the order of their names; HSCAN returns
//     the whole hash with cursor 0 (as Redis does for a small hash);
//     HRANDFIELD with a negative count returns at most 65,536 fields. A
//     hash is at most 32,768 fields (deleted ones counted until a DEL) and
//     its state at most the value limit. HINCRBY and HINCRBYFLOAT are
//     read-modify-writes of one field: last writer wins across regions.
//     OBJECT REFCOUNT is 1. Eviction keeps a recency order, not
//     access times or counters, so OBJECT IDLETIME answers Redis's error for
//     an untracked idle time and OBJECT FREQ its error for an LRU policy.
//   - MEMORY USAGE is what the entry counts against maxmemory (key, value
//     and the store's fixed overhead per entry), not Redis's allocator
//     figures; MEMORY DOCTOR, STATS, PURGE and MALLOC-STATS do not exist.
//   - INFO commandstats counts a container command (CLIENT, CONFIG ...) by
//     subcommand, as Redis 7; a call with an unknown subcommand counts
//     under the container, where Redis counts it nowhere.
//   - CLIENT NO-EVICT is accepted and does nothing: clients are never
//     evicted.
//   - AUTH knows one user, "default", whose password is RequirePass.
//   - Writes without an expiry take the node's DefaultTTL (0: none).
//   - An expiry is held in Unix nanoseconds: a time Redis accepts beyond
//     2262-04-11 (EXPIREAT, PEXPIREAT, SET PXAT ...) is stored as that last
//     instant, and PEXPIRETIME reports it.
//   - DBSIZE counts the entries held here, including expired ones not yet
//     reclaimed (as Redis does).
//   - A bulk argument must be followed by CRLF (Redis skips any two
//     bytes), and a NUL byte in an inline request is an ordinary byte
//     (Redis ends the line there).
//   - Node errors: a key or value over the node's limits answers "-ERR key
//     or value too large: ..." (the connection stays open); a node whose
//     clock is out of bounds relative to its peers answers writes with
//     "-TRYAGAIN ...".
//   - HELLO and INFO report redis_version 7.2.0, with geocache's own version
//     and region beside it.
//   - Pub/sub: no sharded commands (SSUBSCRIBE ...), so PUBSUB HELP does not
//     list them; UNSUBSCRIBE and PUNSUBSCRIBE without
//     arguments go through the subscriptions in the order they were made,
//     and PUBSUB CHANNELS lists channels sorted (Redis: its hash table's
//     order).
//
// # Limits (invariants I6 and I7 of docs/design.md)
//
// Every limit has a default, and a request over one is answered with an
// error and the connection is closed, as Redis does for protocol errors;
// the server goes on serving every other client, and nothing is stored
// from the refused request. Lengths are checked as soon as their header
// arrives, before the bytes they announce, so "$999999999999" costs
// nothing.
//
//	MaxClients       10,000            "-ERR max number of clients reached", then close (at accept)
//	MaxRequestBytes  64 MiB, or node's "-ERR Protocol error: request over the limit of N bytes", close
//	                 MaxValueBytes + 1 MiB if larger (CONFIG GET client-query-buffer-limit)
//	MaxArgs          1,048,576         Redis's "-ERR Protocol error: invalid multibulk length", close
//	                                   (Redis's limit: 2^31-1); inline: "... too many arguments: N (limit M)"
//	MaxBulkBytes     node's MaxValueBytes, at least 64 KiB (Redis's proto-max-bulk-len, as CONFIG GET
//	                                   reports it): Redis's "-ERR Protocol error: invalid bulk length", close
//	inline line      64 KiB (Redis's)  "-ERR Protocol error: too big inline request", close
//	UnauthLimit      16 KiB            "-ERR Protocol error: unauthenticated client sent more than N bytes; AUTH first", close
//	IdleTimeout      0 (never)         the connection is closed silently, as Redis's "timeout"
//	AuthTimeout      10 s              "-ERR Protocol error: not authenticated within 10s", close (with RequirePass)
//	RequestTimeout   30 s, + 1 s per   "-ERR Protocol error: request not completed within <d>", close
//	                 MiB received
//	MaxClientBuffer  max(MaxBytes/4, 16 × MaxRequestBytes)
//	                                   "-ERR max-client-buffer reached", close
//	ProtectedMode    off (serve: on)   Redis's "-DENIED Redis is running in protected mode ...", close
//	PubSubHardLimit  32 MiB            a subscriber's unwritten output: disconnected at once (Redis's
//	PubSubSoftLimit  8 MiB, for        client-output-buffer-limit pubsub 32mb 8mb 60), counted in
//	PubSubSoftTime   60 s              INFO stats client_output_buffer_limit_disconnections
//
// CONFIG SET changes MaxClients (maxclients), IdleTimeout (timeout, for
// idle connections too), RequirePass (requirepass) and the pub/sub limits
// (client-output-buffer-limit) while the server runs (settings.go).
//
// The two limits Redis also has answer in Redis 7.0's words (checked
// against redis-server 7.0.15), and the server's log line (Warn, at most
// one per 10 s) gives the figures: "argument of N bytes, over the limit
// of M", "N arguments, over the limit of M"; Stats.Rejected (INFO stats
// geocache_rejected_requests) counts every refusal. As in Redis, the
// value limit also bounds what APPEND and SETRANGE make ("-ERR string
// exceeds maximum allowed size (proto-max-bulk-len)") and the offsets of
// GETBIT and SETBIT ("-ERR bit offset is not an integer or out of range"
// for a byte at or past MaxBulkBytes).
//
// UnauthLimit counts every byte a client sends before it authenticates
// (its failed AUTH attempts included) when RequirePass is set. Before
// AUTH, only AUTH, HELLO (with AUTH ...), QUIT and RESET run; every other
// command answers "-NOAUTH Authentication required." (checked after
// unknown-command and arity errors, in Redis's order). Malformed requests
// ("*x", "$-2", a missing '$' or CRLF, unbalanced quotes) answer "-ERR
// Protocol error: ..." and close; replies to the commands before them in
// the same pipeline are sent first. Replies are flushed in pieces, so a
// long reply (MGET of many large values) never needs a buffer of its size.
//
// The listener's address is the caller's business (geocache serve binds
// to loopback by default).
//
// # Protecting the port
//
// Protected mode (Config.ProtectedMode, Redis's protected-mode): without
// RequirePass, only local clients are served; any other gets Redis 7.0's
// "-DENIED ..." text and is closed, counted in Stats.Rejected. "Local" is
// Config.IsLocal, by default IsLoopback (loopback IPs, Unix sockets; any
// other network fails closed), as Redis's connIsLocal. It is a function in
// the Config because the test machines have only loopback addresses: the
// tests make 127.0.0.2 play a remote client. A client whose TLS
// certificate was verified against ClientCAs (ServeTLS with
// RequireAndVerifyClientCert) counts as local — it has authenticated;
// Redis does not have this case.
//
// AUTH hygiene: the password is kept as its SHA-256 digest and compared
// with subtle.ConstantTimeCompare against the digest of the attempt, so
// the time taken reveals neither the length nor a matching prefix. Failed
// attempts (AUTH and HELLO ... AUTH) are counted (Stats.AuthFailures, INFO
// stats acl_access_denied_auth as in Redis), logged at Warn once per
// client IP per minute with the number suppressed meanwhile (1,024
// addresses tracked; beyond, new addresses share one line a minute), and
// delayed on their connection: the n-th failure's reply waits (n-1) × 10
// ms, at most 1 s, after the replies before it are flushed. The delay
// holds only its connection's goroutine, and Close cuts it short.
// AuthTimeout closes clients that have not authenticated in time, so that
// clients which never do cannot hold every MaxClients slot.
//
// Slow clients: Redis's "timeout" (IdleTimeout here) counts idle time, so a
// client sending one byte a second is never idle. RequestTimeout bounds
// the time from a request's first byte to its last instead, with one
// second more for every MiB of the request received, so that a large value
// arriving at 1 MiB/s or faster is never cut (a 512 MiB one may take
// RequestTimeout + 512 s), while a client dribbling bytes earns about a
// microsecond a byte; a client whose requests each arrive in time may stay
// forever, however slowly it sends between them. A TLS handshake is
// bounded by RequestTimeout too, and so is each write of replies when
// there is no IdleTimeout (a client that does not read its replies would
// otherwise hold its goroutine for ever).
//
// Bytes across clients: each connection keeps an 8 KiB read buffer at
// rest (bounded by MaxClients); a request that needs more grows it by
// doubling, never in one step to a length the client only announced (a
// client must send the bytes it makes the server hold), and the growth is
// taken from MaxClientBuffer, shared by all clients (Stats.BufferBytes).
// A connection that would exceed it is answered "-ERR max-client-buffer
// reached" and closed. Refusing, rather than waiting for other
// connections to give bytes back, means no set of connections can wait on
// each other. The buffer shrinks back, and its bytes return to the
// budget, once the large request is consumed. geocache serve bounds one
// request to the node's MaxValueBytes + RequestMargin (1 MiB).
//
// Large replies: a value of 256 KiB or more (GET, MGET, GETRANGE, the
// GETSET family, HGET, HMGET, HGETALL, HVALS, HRANDFIELD, HSCAN) is not
// copied into the connection's output: it is written from the node's own
// bytes (the node never modifies a value in place) once its command has
// ended, in 1 MiB pieces, each with the write bound above. So a client
// sending a few bytes cannot make the server copy a 512 MiB value per
// request, a command is not held (nor a transaction waiting for it) while
// its reply crawls to a slow client, and a client that reads a long reply
// slowly but steadily is not closed for it, while one that stops reading
// is. Replies that CLIENT REPLY may drop, EXEC's, and those of a
// subscribed RESP3 client are copied, as before.
//
// TLS: ServeTLS serves RESP over TLS with a *tls.Config (geocache serve
// passes the node's, whose GetCertificate follows certificate reloads);
// RequireAndVerifyClientCert makes clients present a certificate of the
// CA. Failed handshakes (a plaintext client on the TLS port, an unknown
// CA) count in Stats.TLSHandshakeErrors and are logged at Warn,
// rate-limited.
//
// # Why not a RESP server library
//
// The suggested library, github.com/tidwall/redcon (v1.6.4), was checked
// and not used: its server reads requests without any bound (a client
// that announces "$999999999999" and streams data grows the buffer until
// the process runs out of memory; "*999999999999\r\n" spins a core in its
// parse loop), its standalone parser ReadNextCommand panics on
// "*1\r\n$-2\r\n", its Close does not wait for connection goroutines, and
// it allocates a copy of every command and its argument slice (GET and SET
// could not stay allocation-free). The request reader here (reader.go) is
// small, bounded, incremental, allocation-free once warm, and fuzzed
// (FuzzReader); replies use append-style encoders for RESP2 and RESP3
// (reply.go).
package resp
