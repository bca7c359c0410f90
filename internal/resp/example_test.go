package resp_test

import (
	"context"
	"fmt"
	"net"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/resp"
	"github.com/redis/go-redis/v9"
)

// A node served over RESP to a Redis client.
func Example() {
	node, err := geocache.Open(geocache.SingleNode(64 << 20))
	if err != nil {
		panic(err)
	}
	defer node.Close()
	srv, err := resp.New(resp.Config{Node: node})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: ln.Addr().String()})
	defer c.Close()
	c.Set(ctx, "greeting", "hello", 0)
	fmt.Println(c.Get(ctx, "greeting").Val())
	fmt.Println(c.Do(ctx, "GEOCACHE", "ACK").Val())
	fmt.Println(c.SetNX(ctx, "greeting", "again", 0).Val())
	// Output:
	// hello
	// LOCAL
	// false
}
