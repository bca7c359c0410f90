package resp

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/cluster"
)

// A connection's forwarded commands (forward.go): the batches of the read
// being executed, one per owner, and the replies they leave to splice.

// fwdState is a connection's forwarding state, kept between reads for its
// buffers: the batches, the replies' parts (every reply's parts are a
// run of parts), batches done with (free) and the buffer out was spliced
// from (spare), to be used again.
type fwdState struct {
	batches []*fwdBatch
	replies []fwdReply
	parts   []fwdPart
	free    []*fwdBatch
	spare   []byte
}

// fwdKeep is the largest buffer a connection keeps for its next forwards.
const fwdKeep = 64 << 10

// newBatch returns an empty batch to addr, reusing one done with.
func (st *fwdState) newBatch(addr string, mode fwdMode) *fwdBatch {
	var b *fwdBatch
	if n := len(st.free); n > 0 {
		b, st.free = st.free[n-1], st.free[:n-1]
	} else {
		b = &fwdBatch{}
	}
	*b = fwdBatch{
		addr: addr, first: mode, last: mode,
		reqs: keep(b.reqs), raw: keep(b.raw),
		starts: b.starts[:0], ends: b.ends[:0], skips: b.skips[:0], modes: b.modes[:0], at: b.at[:0],
	}
	return b
}

// keep returns b emptied, or nil if it grew past fwdKeep.
func keep(b []byte) []byte {
	if cap(b) > fwdKeep {
		return nil
	}
	return b[:0]
}

// fwdBatch is the requests of one read to one owner, written in order on
// one connection.
type fwdBatch struct {
	addr        string
	first, last fwdMode // the mode of its first and of its last request
	reqs        []byte
	starts      []int     // where each request starts in reqs (after what it skips)
	ends        []int     // where each request ends
	skips       []int     // the replies before each request's to skip: mode changes, ASKING
	modes       []fwdMode // each request's mode (follow sends it again)
	raw         []byte    // the replies as read
	at          []int     // where each reply starts in raw (one more: its end)
	sent        bool      // the requests were written: they may have run
	err         error     // the exchange failed: every request is answered so
	held        int       // bytes reserved from MaxClientBuffer for its replies
	pre         int       // mode changes written before it on a shared connection
	done        chan struct{}
}

// fwdReply is a reply to splice into out: one forwarded command's, or the
// merge of a split command's parts.
type fwdReply struct {
	at    int // where in out
	mute  bool
	merge byte // 0: one part as it is; 'a': MGET's arrays; 'i': a sum of integers; 'o': MSET's OKs
	n     int  // MGET: the keys
	parts []fwdPart
}

// fwdPart is one part of a reply: a request of a batch, or a reply made
// here (a split command's local part).
type fwdPart struct {
	b     *fwdBatch
	i     int
	local []byte
	pos   []int // MGET: the places of this part's keys among the command's
}

func (p *fwdPart) reply() []byte {
	if p.b == nil {
		return p.local
	}
	return p.b.reply(p.i)
}

func (b *fwdBatch) reply(i int) []byte { return b.raw[b.at[i]:b.at[i+1]] }

// forwards reports whether this connection forwards commands on slots this
// node does not keep: Config.Forward, unless the client asked to be
// redirected (GEOCACHE REDIRECT; the other members' forwarding connections).
func (c *conn) forwards() bool { return c.s.cfg.Forward && !c.redirect }

// forwardRoute is route's forwarding: it returns true if this node serves
// the command; otherwise the command is forwarded (its reply spliced at
// flush) or refused.
func (c *conn) forwardRoute(m *cluster.Map, cmd *command, args [][]byte) bool {
	if cmd.name == "exec" {
		return true // its commands were checked as they were queued
	}
	c.keyBuf = routedKeys(c.keyBuf[:0], cmd, args)
	defer clear(c.keyBuf) // do not pin the request's buffer
	keys := c.keyBuf
	if len(keys) == 0 {
		return true
	}
	slot := cluster.KeySlotBytes(keys[0])
	addr, asking := c.ownerOf(m, slot)
	cross := false
	for _, k := range keys[1:] {
		s := cluster.KeySlotBytes(k)
		if s == slot {
			continue
		}
		cross = true
		if a, _ := c.ownerOf(m, s); a != "" {
			addr = a
		}
	}
	if addr == "" {
		return true // every key is kept here
	}
	if !c.resp3 && c.subscribed() {
		return true // refused in subscribed mode, as Redis does
	}
	if c.tx != nil || cmd.name == "watch" {
		c.refuseRouted(cmd, args, "ERR a transaction runs on one node, and this node does not keep slot "+strconv.Itoa(slot)+
			" (send it to the slot's owner: CLUSTER SLOTS, or a cluster-aware client)")
		return false
	}
	if !cross {
		c.forwardOne(cmd, args, addr, asking)
		return false
	}
	if split := splitKinds[cmd.name]; split != 0 {
		c.forwardSplit(m, cmd, args, split)
		return false
	}
	c.refuseRouted(cmd, args, errCrossSlot)
	return false
}

// splitKinds are the commands over several slots that forwarding splits
// by owner, and how their replies merge.
var splitKinds = map[string]byte{"mget": 'a', "mset": 'o', "del": 'i', "unlink": 'i', "exists": 'i', "touch": 'i'}

// ownerOf returns where a command on slot goes: "" for here, or the
// address of the slot's primary, or (asking) of the co-owner that holds a
// slot this node is still filling.
func (c *conn) ownerOf(m *cluster.Map, slot int) (addr string, asking bool) {
	if m.Owns(c.s.nodeCfg.NodeID, slot) {
		if ask, cold := c.s.cfg.coldSlot(slot); cold && ask != "" {
			return ask, true
		}
		return "", false
	}
	return m.Primary(slot).Addr, false
}

// refuseRouted answers a routed command with an error, and dooms the open
// transaction.
func (c *conn) refuseRouted(cmd *command, args [][]byte, msg string) {
	c.s.rejectedCalls[cmd.statsOf(args).id].Add(1)
	c.failTx()
	c.replyError(msg)
}

// forwardOne queues a command for the owner at addr, its reply to come
// here.
func (c *conn) forwardOne(cmd *command, args [][]byte, addr string, asking bool) {
	b, i := c.queueForward(addr, asking, args)
	c.addForwarded(fwdReply{}, fwdPart{b: b, i: i})
}

// forwardSplit splits a command over several slots: the keys kept here
// run here at once, the others are queued for their owners.
func (c *conn) forwardSplit(m *cluster.Map, cmd *command, args [][]byte, merge byte) {
	step := 1
	if cmd.name == "mset" {
		step = 2
		if (len(args)-1)%2 != 0 {
			c.wrongArity(cmd.name)
			return
		}
	}
	// One part per slot forwarded, as an owner answers commands over
	// several slots -CROSSSLOT (they go out together all the same: one
	// batch per owner); one for all the keys kept here.
	type group struct {
		addr   string
		slot   int
		asking bool
		args   [][]byte
		pos    []int
	}
	var groups []*group
	bySlot := map[int]*group{}
	for i, k := 1, 0; i < len(args); i, k = i+step, k+1 {
		slot := cluster.KeySlotBytes(args[i])
		addr, asking := c.ownerOf(m, slot)
		if addr == "" {
			slot = -1
		}
		g := bySlot[slot]
		if g == nil {
			g = &group{addr: addr, slot: slot, asking: asking, args: [][]byte{args[0]}}
			groups = append(groups, g)
			bySlot[slot] = g
		}
		g.args = append(g.args, args[i:i+step]...)
		g.pos = append(g.pos, k)
	}
	parts := make([]fwdPart, 0, len(groups))
	for _, g := range groups {
		if g.addr != "" {
			b, i := c.queueForward(g.addr, g.asking, g.args)
			parts = append(parts, fwdPart{b: b, i: i, pos: g.pos})
			continue
		}
		// Kept here: run now, its reply taken out of out.
		mark := len(c.out)
		c.capture = true
		c.run(cmd, g.args)
		c.capture = false
		local := bytes.Clone(c.out[mark:])
		c.out = c.out[:mark]
		parts = append(parts, fwdPart{local: local, pos: g.pos})
	}
	c.addForwarded(fwdReply{merge: merge, n: (len(args) - 1) / step}, parts...)
}

// queueForward adds a request to the batch of its owner, returning the
// batch and the request's index in it.
func (c *conn) queueForward(addr string, asking bool, args [][]byte) (*fwdBatch, int) {
	if c.fwd == nil {
		c.fwd = &fwdState{}
	}
	mode := fwdMode{proto: 2, ack: c.sess.Ack(), ackTimeout: c.ackTimeout}
	if c.resp3 {
		mode.proto = 3
	}
	var b *fwdBatch
	for _, x := range c.fwd.batches {
		if x.addr == addr {
			b = x
			break
		}
	}
	if b == nil {
		b = c.fwd.newBatch(addr, mode)
		c.fwd.batches = append(c.fwd.batches, b)
	}
	skip := 0
	b.reqs, skip = appendModeChange(b.reqs, b.last, mode)
	b.last = mode
	if asking {
		b.reqs = append(b.reqs, askingReq...)
		skip++
	}
	b.starts = append(b.starts, len(b.reqs))
	b.reqs = appendRequest(b.reqs, args...)
	b.ends = append(b.ends, len(b.reqs))
	b.skips = append(b.skips, skip)
	b.modes = append(b.modes, mode)
	c.s.forwarded.Add(1)
	return b, len(b.ends) - 1
}

// addForwarded records r, made of parts, to be spliced where out ends now.
func (c *conn) addForwarded(r fwdReply, parts ...fwdPart) {
	st := c.fwd // made by queueForward: a forwarded reply has a forwarded part
	start := len(st.parts)
	st.parts = append(st.parts, parts...)
	r.parts = st.parts[start:len(st.parts):len(st.parts)]
	r.at, r.mute = len(c.out), c.mute
	st.replies = append(st.replies, r)
}

// resolveForwards exchanges the batches queued by the commands run since
// the last call and splices their replies into out, each where its
// command left its place. flush calls it before writing.
func (c *conn) resolveForwards() {
	st := c.fwd
	if st == nil || len(st.replies) == 0 {
		return
	}
	c.s.fwdr.exchange(st.batches, true)
	for _, b := range st.batches {
		c.fwdHeld += b.held // released once written (flush)
	}
	// Splice, into the buffer out was spliced from last time.
	out := slices.Grow(st.spare[:0], len(c.out)+c.forwardedBytes())
	prev, shift, bi := 0, 0, 0
	for _, r := range st.replies {
		out = append(out, c.out[prev:r.at]...)
		prev = r.at
		for ; bi < len(c.big) && c.big[bi].at < r.at; bi++ {
			c.big[bi].at += shift
		}
		if r.mute {
			continue
		}
		n := len(out)
		out = c.appendMerged(out, &r)
		shift += len(out) - n
	}
	for ; bi < len(c.big); bi++ {
		c.big[bi].at += shift
	}
	out = append(out, c.out[prev:]...)
	st.spare, c.out = keep(c.out), out
	clear(st.replies)
	st.replies = st.replies[:0]
	clear(st.parts)
	st.parts = st.parts[:0]
	st.free = append(st.free, st.batches...)
	clear(st.batches)
	st.batches = st.batches[:0]
}

func (c *conn) forwardedBytes() int {
	n := 0
	for _, b := range c.fwd.batches {
		n += len(b.raw)
	}
	return n
}

// appendMerged appends a forwarded command's reply to the client.
func (c *conn) appendMerged(dst []byte, r *fwdReply) []byte {
	for i := range r.parts {
		if p := &r.parts[i]; p.b != nil && p.b.err != nil {
			c.s.fwdErrors.Add(1)
			// Before the request went out, a retry is safe; after, the
			// command may have run, as after any lost connection.
			msg := "TRYAGAIN forwarding to " + p.b.addr + " failed: " + p.b.err.Error()
			if p.b.sent {
				msg = "ERR forwarding to " + p.b.addr + " failed after the command was sent (it may have run): " + p.b.err.Error()
			}
			c.countError(msg)
			return appendError(dst, msg)
		}
	}
	if r.merge == 0 {
		return append(dst, r.parts[0].reply()...)
	}
	for i := range r.parts { // an error in a part is the answer
		if rep := r.parts[i].reply(); len(rep) > 0 && rep[0] == '-' {
			return append(dst, rep...)
		}
	}
	switch r.merge {
	case 'o':
		return append(dst, r.parts[0].reply()...)
	case 'i':
		sum := int64(0)
		for i := range r.parts {
			rep := r.parts[i].reply()
			n, ok := parseInt(rep[1 : len(rep)-2])
			if rep[0] != ':' || !ok {
				return appendError(dst, "ERR unexpected reply from a slot's owner")
			}
			sum += n
		}
		return appendInt(dst, sum)
	}
	// MGET: the elements of each part's array, in the keys' order.
	elems := make([][]byte, r.n)
	for i := range r.parts {
		p := &r.parts[i]
		rep := p.reply()
		if rep[0] != '*' {
			return appendError(dst, "ERR unexpected reply from a slot's owner")
		}
		rest := rep[bytes.IndexByte(rep, '\n')+1:]
		for _, k := range p.pos {
			n := elementLen(rest)
			if n <= 0 {
				return appendError(dst, "ERR unexpected reply from a slot's owner")
			}
			elems[k], rest = rest[:n], rest[n:]
		}
	}
	dst = appendArray(dst, r.n)
	for _, e := range elems {
		dst = append(dst, e...)
	}
	return dst
}

// elementLen returns the length of the bulk string or null at the start of
// b (an MGET element), or 0 if it is neither or incomplete.
func elementLen(b []byte) int {
	nl := bytes.IndexByte(b, '\n')
	if nl < 2 || b[nl-1] != '\r' {
		return 0
	}
	switch b[0] {
	case '_':
		return nl + 1
	case '$':
		n, ok := parseInt(b[1 : nl-1])
		if !ok {
			return 0
		}
		if n < 0 {
			return nl + 1
		}
		if end := nl + 1 + int(n) + 2; end <= len(b) {
			return end
		}
	}
	return 0
}

// exchange sends every batch to its owner, all at once (on the owner's
// shared connection, or a pooled one for a batch that waits for
// acknowledgements: forward_mux.go), then waits for their replies; with
// follow, it sends a request its owner answered -MOVED or -ASK (the map
// moved) on once more.
func (f *forwarder) exchange(batches []*fwdBatch, follow bool) {
	slices.SortFunc(batches, func(a, b *fwdBatch) int { return strings.Compare(a.addr, b.addr) })
	pooled := false
	for _, b := range batches {
		if !b.localOnly() {
			pooled = true
			continue
		}
		if m := f.mux(b.addr); m != nil {
			m.submit(b) // sets b.done
		} else {
			b.err = errFwdClosed
		}
	}
	if pooled {
		f.exchangePooled(batches)
	}
	for _, b := range batches {
		if b.done != nil {
			<-b.done
		}
	}
	for _, b := range batches {
		if follow && b.err == nil {
			f.follow(b)
		}
	}
}

// exchangePooled exchanges the batches that wait for acknowledgements
// (not localOnly) each on a connection of its owner's pool, taken in the
// order of the owners' addresses.
func (f *forwarder) exchangePooled(batches []*fwdBatch) {
	type held struct {
		p   *fwdPool
		fc  *fwdConn
		pre int
	}
	conns := make([]held, len(batches))
	for i, b := range batches {
		if b.localOnly() {
			continue
		}
		p, fc, err := f.get(b.addr, time.Now().Add(fwdTimeout))
		if err != nil {
			b.err = err
			continue
		}
		req, pre := appendModeChange(nil, fc.mode, b.first)
		if pre > 0 {
			req = append(req, b.reqs...)
		} else {
			req = b.reqs
		}
		conns[i] = held{p, fc, pre}
		fc.nc.SetWriteDeadline(time.Now().Add(fwdTimeout))
		b.sent = true
		if _, err := fc.nc.Write(req); err != nil {
			b.err = err
		}
	}
	for i, b := range batches {
		h := conns[i]
		if h.fc == nil {
			continue
		}
		if b.err == nil {
			wait := fwdTimeout
			for _, m := range b.modes {
				if m.ack != geocache.Local {
					wait = max(wait, fwdTimeout+m.ackTimeout)
				}
			}
			h.fc.nc.SetReadDeadline(time.Now().Add(wait))
			limit := fwdLimit{left: f.s.fwdReplyLimit(), s: f.s, nc: h.fc.nc}
			b.err = b.read(h.fc, h.pre, &limit)
			b.held = limit.held
			if b.err == nil || b.err == errBatchOver {
				h.fc.mode = b.last
			}
		}
		f.put(h.p, h.fc, b.err == nil || b.err == errBatchOver)
	}
}

// read reads a batch's replies, skipping those of the pre requests that
// set the connection's mode, and those each request skips.
func (b *fwdBatch) read(fc *fwdConn, pre int, limit *fwdLimit) error {
	b.raw, b.at = b.raw[:0], append(b.at[:0], 0)
	for i := range b.ends {
		n := b.skips[i]
		if i == 0 {
			n += pre
		}
		for range n {
			rep, err := readRawReply(fc.rd, nil, limit, 0)
			if err != nil {
				return err
			}
			if rep[0] == '-' {
				return errors.New(trimCRLF(rep[1:]))
			}
		}
		var err error
		if b.raw, err = readRawReply(fc.rd, b.raw, limit, 0); err != nil {
			return err
		}
		b.at = append(b.at, len(b.raw))
	}
	if limit.over {
		return errBatchOver
	}
	return nil
}

// follow sends once more, on its own, each request of b that its owner
// answered -MOVED or -ASK (the region's map moved between this node's
// reading and the owner's), to the node named.
func (f *forwarder) follow(b *fwdBatch) {
	for i := range b.ends {
		kind, addr, ok := redirectOf(b.reply(i))
		if !ok {
			continue
		}
		m := b.modes[i]
		one := &fwdBatch{addr: addr, first: m, last: m}
		skip := 0
		if kind == "ASK" {
			one.reqs = append(one.reqs, askingReq...)
			skip = 1
		}
		one.starts = []int{len(one.reqs)}
		one.reqs = append(one.reqs, b.reqs[b.starts[i]:b.ends[i]]...)
		one.ends, one.skips, one.modes = []int{len(one.reqs)}, []int{skip}, []fwdMode{m}
		f.exchange([]*fwdBatch{one}, false)
		b.held += one.held
		if one.err != nil {
			b.err, b.sent = one.err, true
			return
		}
		b.replace(i, one.reply(0))
	}
}

var askingReq = appendRequest(nil, "ASKING")

// replace puts rep in place of the reply of request i.
func (b *fwdBatch) replace(i int, rep []byte) {
	old := b.at[i+1] - b.at[i]
	raw := make([]byte, 0, len(b.raw)-old+len(rep))
	raw = append(append(append(raw, b.raw[:b.at[i]]...), rep...), b.raw[b.at[i+1]:]...)
	d := len(rep) - old
	for j := i + 1; j < len(b.at); j++ {
		b.at[j] += d
	}
	b.raw = raw
}

// redirectOf parses "-MOVED <slot> <addr>" and "-ASK <slot> <addr>".
func redirectOf(rep []byte) (kind, addr string, ok bool) {
	switch {
	case bytes.HasPrefix(rep, []byte("-MOVED ")):
		kind = "MOVED"
	case bytes.HasPrefix(rep, []byte("-ASK ")):
		kind = "ASK"
	default:
		return "", "", false
	}
	f := bytes.Fields(rep[1:])
	if len(f) != 3 {
		return "", "", false
	}
	return kind, string(f[2]), true
}
