package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/geocache/geocache/internal/wire"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// The gRPC transport: one bidirectional-streaming method, declared by hand
// with grpc.ServiceDesc (what protoc-gen-go-grpc would generate), whose
// messages are wire.Ops (client to server) and wire.Ack (server to client),
// serialized by wireCodec. Both transports therefore run the same encoder
// and decoder on the same Go structs; what differs is everything between
// them: HTTP/2 framing and flow control, gRPC's message envelope, its
// buffering and goroutines.

const (
	serviceName = "geocache.bench.Replication"
	methodName  = "Stream"
	fullMethod  = "/" + serviceName + "/" + methodName
)

// replicationServer is the service's handler type; it has no methods
// because the stream handler below does all the work.
type replicationServer interface{}

type replServer struct{}

var streamDesc = grpc.StreamDesc{
	StreamName:    methodName,
	Handler:       serveStream,
	ServerStreams: true,
	ClientStreams: true,
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*replicationServer)(nil),
	Streams:     []grpc.StreamDesc{streamDesc},
	Metadata:    "hand-written",
}

// serveStream is the receiver: the same loop as serveFrames.
func serveStream(_ any, ss grpc.ServerStream) error {
	var ops wire.Ops
	next := uint64(1)
	for {
		err := ss.RecvMsg(&ops)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := checkSeq(&ops, &next); err != nil {
			panic(fmt.Sprintf("grpc receiver: %v", err))
		}
		if err := ss.SendMsg(&wire.Ack{Origin: ops.Origin, Seq: next - 1}); err != nil {
			return err
		}
	}
}

// codecName is the content-subtype: requests travel as
// "application/grpc+geocache-wire".
const codecName = "geocache-wire"

func init() { encoding.RegisterCodecV2(wireCodec{}) }

// wireCodec is a grpc encoding.CodecV2 that serializes *wire.Ops and
// *wire.Ack with the wire package. A message is the complete wire frame,
// length prefix included (4 bytes that gRPC's own 5-byte envelope makes
// redundant), because wire.ReadFrame is the package's only decoder.
//
// Marshal encodes into a buffer from grpc's pool, as grpc's proto codec does
// for messages above 1 KiB; grpc returns it to the pool after writing.
// Unmarshal runs wire.ReadFrame over a pooled 64 KiB bufio.Reader that reads
// from grpc's received buffers: the same decode as the frames receiver, plus
// one memory copy of the message into the bufio buffer (the frames receiver
// copies once, from the socket into its bufio buffer; grpc has already
// copied from the socket into its own buffers).
type wireCodec struct{}

var errTrailing = errors.New("wireCodec: bytes after the frame")

func (wireCodec) Name() string { return codecName }

func (wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *wire.Ops:
		size := 4 + wire.MaxOpsHeader
		for i := range m.Ops {
			size += m.Ops[i].Size()
		}
		if mem.IsBelowBufferPoolingThreshold(size) {
			return mem.BufferSlice{mem.SliceBuffer(m.Append(make([]byte, 0, size)))}, nil
		}
		pool := mem.DefaultBufferPool()
		b := pool.Get(size)
		*b = m.Append((*b)[:0]) // fits: Append grows by the same estimate
		return mem.BufferSlice{mem.NewBuffer(b, pool)}, nil
	case *wire.Ack:
		return mem.BufferSlice{mem.SliceBuffer(m.Append(make([]byte, 0, 16)))}, nil
	}
	return nil, fmt.Errorf("wireCodec: cannot marshal %T", v)
}

type decodeState struct {
	src sliceReader
	br  *bufio.Reader
}

var decodePool = sync.Pool{New: func() any {
	st := new(decodeState)
	st.br = bufio.NewReaderSize(&st.src, 64<<10)
	return st
}}

func (wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	st := decodePool.Get().(*decodeState)
	st.src = sliceReader{s: data}
	st.br.Reset(&st.src)
	f, _, err := wire.ReadFrame(st.br, 0, nil)
	if err == nil && (st.br.Buffered() != 0 || st.src.remaining()) {
		err = errTrailing
	}
	st.src = sliceReader{}
	st.br.Reset(&st.src)
	decodePool.Put(st)
	if err != nil {
		return err
	}
	switch m := v.(type) {
	case *wire.Ops:
		if o, ok := f.(*wire.Ops); ok {
			*m = *o
			return nil
		}
	case *wire.Ack:
		if a, ok := f.(*wire.Ack); ok {
			*m = *a
			return nil
		}
	}
	return fmt.Errorf("wireCodec: got %T for %T", f, v)
}

// sliceReader reads a mem.BufferSlice without taking references (grpc
// holds them until Unmarshal returns) and without allocating.
type sliceReader struct {
	s   mem.BufferSlice
	i   int
	off int
}

func (r *sliceReader) Read(p []byte) (int, error) {
	for r.i < len(r.s) {
		d := r.s[r.i].ReadOnlyData()[r.off:]
		if len(d) == 0 {
			r.i++
			r.off = 0
			continue
		}
		n := copy(p, d)
		r.off += n
		return n, nil
	}
	return 0, io.EOF
}

func (r *sliceReader) remaining() bool {
	for i := r.i; i < len(r.s); i++ {
		n := r.s[i].Len()
		if i == r.i {
			n -= r.off
		}
		if n > 0 {
			return true
		}
	}
	return false
}

type grpcTransport struct {
	ln  net.Listener
	srv *grpc.Server
	// window, if positive, sets the initial stream and connection flow
	// control windows on both sides (grpc's defaults: 64 KiB, then grown
	// by its bandwidth-delay estimator).
	window int32
}

func newGRPCTransport(window int32) (*grpcTransport, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var opts []grpc.ServerOption
	if window > 0 {
		opts = append(opts, grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window))
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&serviceDesc, replServer{})
	go srv.Serve(ln)
	return &grpcTransport{ln: ln, srv: srv, window: window}, nil
}

func (t *grpcTransport) name() string {
	if t.window > 0 {
		return fmt.Sprintf("grpc-window%dk", t.window>>10)
	}
	return "grpc"
}

func (t *grpcTransport) shutdown() { t.srv.Stop() }

type grpcLink struct {
	cc     *grpc.ClientConn
	cs     grpc.ClientStream
	c      *countingConn
	cancel context.CancelFunc
}

func (t *grpcTransport) open() (link, error) {
	l := &grpcLink{}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			l.c = &countingConn{Conn: c}
			return l.c, nil
		}),
	}
	if t.window > 0 {
		opts = append(opts, grpc.WithInitialWindowSize(t.window), grpc.WithInitialConnWindowSize(t.window))
	}
	cc, err := grpc.NewClient("passthrough:///"+t.ln.Addr().String(), opts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := cc.NewStream(ctx, &streamDesc, fullMethod, grpc.CallContentSubtype(codecName))
	if err != nil {
		cancel()
		cc.Close()
		return nil, err
	}
	l.cc, l.cs, l.cancel = cc, cs, cancel
	return l, nil
}

func (l *grpcLink) send(ops *wire.Ops) error { return l.cs.SendMsg(ops) }

func (l *grpcLink) flush() error { return nil } // grpc's writer flushes by itself

func (l *grpcLink) recvAck(ack *wire.Ack) error { return l.cs.RecvMsg(ack) }

func (l *grpcLink) closeSend() error { return l.cs.CloseSend() }

func (l *grpcLink) close() error {
	l.cancel()
	return l.cc.Close()
}

func (l *grpcLink) counts() sockCounts { return l.c.counts() }
