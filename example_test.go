package geocache_test

import (
	"context"
	"fmt"
	"time"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/testkit"
)

// A single node needs no configuration beyond its budget.
func Example() {
	n, err := geocache.Open(geocache.SingleNode(64 << 20))
	if err != nil {
		panic(err)
	}
	defer n.Close()

	ctx := context.Background()
	n.Set(ctx, "greeting", []byte("hello"))
	v, _ := n.Get("greeting")
	fmt.Println(string(v))

	n.Delete(ctx, "greeting")
	_, err = n.Get("greeting")
	fmt.Println(err)
	// Output:
	// hello
	// geocache: not found
}

// Two regions on an in-memory network (in production: MultiRegion with TCP
// addresses). A write with WithAck(geocache.All) returns once the other
// region has applied it.
func Example_twoRegions() {
	network := testkit.NewNetwork()
	defer network.Close()
	open := func(region string, id uint32, peer string) *geocache.Node {
		ln, _ := network.Listen(region)
		cfg := geocache.MultiRegion(region, id, region, peer)
		cfg.Listener, cfg.Dial = ln, network.Dialer(region)
		n, err := geocache.Open(cfg)
		if err != nil {
			panic(err)
		}
		return n
	}
	us := open("us-east", 1, "eu-west")
	eu := open("eu-west", 2, "us-east")
	defer us.Close()
	defer eu.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := us.Set(ctx, "user:42", []byte("alice"), geocache.WithAck(geocache.All)); err != nil {
		panic(err)
	}
	v, _ := eu.Get("user:42")
	fmt.Println("eu-west reads:", string(v))
	// Output: eu-west reads: alice
}

type profile struct {
	Name  string   `json:"name"`
	Langs []string `json:"langs"`
}

// Any Go value can be stored through the node's Codec (JSON by default).
func ExampleSetValue() {
	n, _ := geocache.Open(geocache.Config{})
	defer n.Close()

	geocache.SetValue(context.Background(), n, "p:1", profile{Name: "Ada", Langs: []string{"go", "c"}})
	p, _ := geocache.GetValue[profile](n, "p:1")
	fmt.Printf("%+v\n", p)
	// Output: {Name:Ada Langs:[go c]}
}
