package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// A two-region link with 30 ms of latency one way, partitioned and healed.
func ExampleNetwork() {
	n := testkit.NewNetwork()
	defer n.Close()
	n.SetLatency("eu/1", "us/1", 30*time.Millisecond)

	l, _ := n.Listen("us/1")
	dial := n.Dialer("eu/1") // what replication code takes as its Dial
	eu, _ := dial(context.Background(), "us/1")
	us, _ := l.Accept()

	eu.Write([]byte("hello")) // delivered 30 ms later (TestNetworkLatency)
	buf := make([]byte, 5)
	io.ReadFull(us, buf)
	fmt.Println(string(buf))

	n.Cut("eu/1", "us/1")
	eu.Write([]byte("held"))
	us.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := us.Read(buf)
	fmt.Println(errors.Is(err, os.ErrDeadlineExceeded))

	n.Heal("eu/1", "us/1")
	us.SetReadDeadline(time.Time{})
	k, _ := io.ReadFull(us, buf[:4])
	fmt.Println(string(buf[:k]))

	eu.Close()
	_, err = us.Read(buf)
	fmt.Println(err)
	// Output:
	// hello
	// true
	// held
	// EOF
}
