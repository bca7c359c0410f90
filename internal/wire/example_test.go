package wire_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/geocache/geocache/internal/wire"
)

func Example() {
	// The sender appends frames to one reusable buffer and writes it out.
	var out []byte
	out = (&wire.Hello{Proto: wire.Proto, Cluster: "prod", Region: "eu-west", NodeName: "cache-1", NodeID: 7}).Append(out)
	out = (&wire.Ops{Origin: 7, FirstSeq: 41, Ops: []wire.Op{
		{Kind: wire.KindSet, Key: "user:1", Value: []byte("ann"), HLC: 1 << 16, VOrigin: 7},
		{Kind: wire.KindDelete, Key: "user:2", HLC: 2 << 16, VOrigin: 7},
	}}).Append(out)
	out = (&wire.Ack{Origin: 3, Seq: 300}).Append(out)

	// The receiver reads frames until the stream ends, reusing one buffer.
	r := bufio.NewReader(bytes.NewReader(out))
	var buf []byte
	for {
		f, nbuf, err := wire.ReadFrame(r, wire.DefaultMaxFrame, buf)
		buf = nbuf
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("error:", err) // send a Reject and close
			return
		}
		switch f := f.(type) {
		case *wire.Hello:
			fmt.Printf("hello from %s in %s, proto %d\n", f.NodeName, f.Region, f.Proto)
		case *wire.Ops:
			for i, op := range f.Ops {
				fmt.Printf("seq %d: %v %s %q\n", f.FirstSeq+uint64(i), op.Kind, op.Key, op.Value)
			}
		default:
			fmt.Printf("%v frame\n", f.Type())
		}
	}
	// Output:
	// hello from cache-1 in eu-west, proto 12
	// seq 41: set user:1 "ann"
	// seq 42: delete user:2 ""
	// Ack frame
}

func ExampleReadFrame_errors() {
	// A length prefix over the limit is rejected before the body is read.
	r := bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}))
	_, _, err := wire.ReadFrame(r, 0, nil)
	fmt.Println(err)

	// So is a frame type this version does not know; it is also ErrMalformed.
	r = bufio.NewReader(bytes.NewReader([]byte{0, 0, 0, 1, 99}))
	_, _, err = wire.ReadFrame(r, 0, nil)
	fmt.Println(err, errors.Is(err, wire.ErrMalformed))
	// Output:
	// wire: frame too large: length 4294967295 exceeds 4194304
	// wire: unknown frame type 99 true
}
