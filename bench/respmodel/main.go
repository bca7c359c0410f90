// Command respmodel measures the I/O model of a RESP server on its own:
// the same minimal GET/SET/PING server over a geocache.Node, once with a
// goroutine per connection (Go's netpoller, as internal/resp) and once on
// gnet's event loops (epoll, one loop per core, as Redis's ae loop). It
// answers the question whether goroutine-per-connection is what keeps
// `geocache serve` below redis-server per request on two cores
// (docs/benchmarks-server.md, "Event loop against goroutines").
//
// It takes the flags respprof gives `geocache serve`, so that respprof can
// run it in its place (a wrapper script chooses the model):
//
//	respmodel serve --model gnet|goroutine --addr 127.0.0.1:6380 --max-memory 256MB
//
// Not a server to use: no limits, no AUTH, no timeouts, multibulk requests
// only; redis-benchmark's CONFIG GET at start is answered with an empty
// array.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/geocache/geocache"
	"github.com/panjf2000/gnet/v2"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("respmodel", flag.ExitOnError)
	model := fs.String("model", os.Getenv("RESPMODEL_MODEL"), "gnet or goroutine (default $RESPMODEL_MODEL)")
	addr := fs.String("addr", "127.0.0.1:6380", "listen address")
	maxMem := fs.String("max-memory", "256MB", "entries' memory budget, <n>MB")
	fs.String("peer-addr", "", "ignored (single node)")
	fs.String("log-level", "", "ignored")
	fs.Parse(args)
	mb, err := strconv.Atoi(strings.TrimSuffix(*maxMem, "MB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "respmodel: --max-memory wants <n>MB")
		os.Exit(2)
	}
	node, err := geocache.Open(geocache.Config{MaxBytes: int64(mb) << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, "respmodel:", err)
		os.Exit(1)
	}
	defer node.Close()
	h := &handler{node: node, ctx: context.Background()}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch *model {
	case "gnet":
		err = serveGnet(ctx, h, *addr)
	case "goroutine":
		err = serveGoroutines(ctx, h, *addr)
	default:
		err = fmt.Errorf("--model %q: want gnet or goroutine", *model)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "respmodel:", err)
		os.Exit(1)
	}
}

// handler executes commands; the same for both models.
type handler struct {
	node *geocache.Node
	ctx  context.Context
}

// parser parses multibulk requests out of a buffer; argv is reused.
type parser struct{ argv [][]byte }

// next parses the command at the start of b: its arguments and length, or
// n == 0 if b does not hold all of it, or an error.
func (p *parser) next(b []byte) (args [][]byte, n int, err error) {
	if len(b) == 0 {
		return nil, 0, nil
	}
	if b[0] != '*' {
		return nil, 0, errors.New("multibulk requests only")
	}
	count, pos, ok := header(b, 0)
	if !ok {
		return nil, 0, nil
	}
	p.argv = p.argv[:0]
	for range count {
		if pos >= len(b) {
			return nil, 0, nil
		}
		if b[pos] != '$' {
			return nil, 0, errors.New("expected '$'")
		}
		size, start, ok := header(b, pos)
		if !ok || start+size+2 > len(b) {
			return nil, 0, nil
		}
		p.argv = append(p.argv, b[start:start+size])
		pos = start + size + 2
	}
	return p.argv, pos, nil
}

// header parses "<c><digits>\r\n" at b[at]: the number and where the line
// ends.
func header(b []byte, at int) (v, end int, ok bool) {
	for i := at + 1; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 >= len(b) {
				return 0, 0, false
			}
			return v, i + 2, true
		}
		v = v*10 + int(c-'0')
	}
	return 0, 0, false
}

func peekKey(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if b[i]|0x20 != s[i] {
			return false
		}
	}
	return true
}

// exec runs one command and appends its reply to out.
func (h *handler) exec(out []byte, args [][]byte) []byte {
	switch {
	case len(args) == 2 && equalFold(args[0], "get"):
		v, err := h.node.Get(peekKey(args[1]))
		if err != nil {
			return append(out, "$-1\r\n"...)
		}
		out = append(out, '$')
		out = strconv.AppendInt(out, int64(len(v)), 10)
		out = append(out, '\r', '\n')
		out = append(out, v...)
		return append(out, '\r', '\n')
	case len(args) == 3 && equalFold(args[0], "set"):
		if err := h.node.Set(h.ctx, string(args[1]), args[2]); err != nil {
			return append(out, "-ERR "+err.Error()+"\r\n"...)
		}
		return append(out, "+OK\r\n"...)
	case len(args) >= 1 && equalFold(args[0], "ping"):
		return append(out, "+PONG\r\n"...)
	case len(args) >= 1 && equalFold(args[0], "config"):
		return append(out, "*0\r\n"...)
	}
	return append(out, "-ERR unknown command\r\n"...)
}

// The goroutine model: one goroutine per connection, a read, every
// complete command executed, one write.

func serveGoroutines(ctx context.Context, h *handler, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go serveConn(h, nc)
	}
}

func serveConn(h *handler, nc net.Conn) {
	defer nc.Close()
	var p parser
	buf := make([]byte, 16<<10)
	out := make([]byte, 0, 4096)
	r, w := 0, 0
	for {
		if w == len(buf) {
			if r == 0 {
				buf = append(buf, make([]byte, len(buf))...)
			} else {
				w = copy(buf, buf[r:w])
				r = 0
			}
		}
		n, err := nc.Read(buf[w:])
		if err != nil {
			return
		}
		w += n
		out = out[:0]
		for {
			args, used, err := p.next(buf[r:w])
			if err != nil {
				return
			}
			if used == 0 {
				break
			}
			r += used
			out = h.exec(out, args)
		}
		if r == w {
			r, w = 0, 0
		}
		if len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return
			}
		}
	}
}

// The event-loop model: gnet runs one epoll loop per core; a loop reads a
// connection once it is readable, runs every complete command and writes
// the replies, without a goroutine per connection.

type gnetServer struct {
	gnet.BuiltinEventEngine
	h      *handler
	engine chan gnet.Engine // the running engine, from OnBoot, for Stop
}

type gnetConn struct {
	p   parser
	out []byte
}

func serveGnet(ctx context.Context, h *handler, addr string) error {
	s := &gnetServer{h: h, engine: make(chan gnet.Engine, 1)}
	go func() {
		<-ctx.Done()
		(<-s.engine).Stop(context.Background())
	}()
	return gnet.Run(s, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithTCPNoDelay(gnet.TCPNoDelay))
}

func (s *gnetServer) OnBoot(eng gnet.Engine) gnet.Action {
	s.engine <- eng
	return gnet.None
}

func (s *gnetServer) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&gnetConn{out: make([]byte, 0, 4096)})
	return nil, gnet.None
}

func (s *gnetServer) OnTraffic(c gnet.Conn) gnet.Action {
	gc := c.Context().(*gnetConn)
	buf, _ := c.Peek(-1)
	gc.out = gc.out[:0]
	r := 0
	for {
		args, used, err := gc.p.next(buf[r:])
		if err != nil {
			return gnet.Close
		}
		if used == 0 {
			break
		}
		r += used
		gc.out = s.h.exec(gc.out, args)
	}
	c.Discard(r)
	if len(gc.out) > 0 {
		if _, err := c.Write(gc.out); err != nil {
			return gnet.Close
		}
	}
	return gnet.None
}
