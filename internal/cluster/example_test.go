package cluster_test

import (
	"fmt"

	"github.com/geocache/geocache/internal/cluster"
)

func Example() {
	members := []cluster.Member{
		{ID: 1, Name: "eu-1", Addr: "10.0.0.1:6379"},
		{ID: 2, Name: "eu-2", Addr: "10.0.0.2:6379"},
		{ID: 3, Name: "eu-3", Addr: "10.0.0.3:6379"},
	}
	m, err := cluster.New(members, 2)
	if err != nil {
		panic(err)
	}
	slot := cluster.KeySlot("{user1000}.following")
	fmt.Println("slot", slot, "same as", cluster.KeySlot("{user1000}.followers"))
	for _, o := range m.Owners(slot) {
		fmt.Println("owner", o.Name)
	}

	// A fourth node joins: it takes its share, and only its share.
	bigger, _ := cluster.New(append(members, cluster.Member{ID: 4, Name: "eu-4", Addr: "10.0.0.4:6379"}), 2)
	for _, ch := range cluster.Diff(m, bigger) {
		n := 0
		for _, tr := range ch.Gained {
			n += tr.Len()
		}
		for _, tr := range ch.Lost {
			n -= tr.Len()
		}
		fmt.Printf("%s: %+d slots\n", ch.Node.Name, n)
	}
	// Output:
	// slot 3443 same as 3443
	// owner eu-1
	// owner eu-2
	// eu-1: -2816 slots
	// eu-2: -2688 slots
	// eu-3: -2736 slots
	// eu-4: +8240 slots
}
