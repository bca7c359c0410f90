package geocache_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/geocache/geocache"
)

// A hash's fields are written and deleted one by one; each merges on its
// own across regions.
func ExampleNode_UpdateHash() {
	n, err := geocache.Open(geocache.SingleNode(64 << 20))
	if err != nil {
		panic(err)
	}
	defer n.Close()
	ctx := context.Background()

	n.HSet(ctx, "user:42", []geocache.Field{{Name: []byte("name"), Value: []byte("Ann")}, {Name: []byte("visits"), Value: []byte("1")}})
	// A read-modify-write of fields, atomic on this node.
	n.UpdateHash(ctx, "user:42", func(h *geocache.HashTx) error {
		if v, ok := h.Get([]byte("visits")); ok && string(v) == "1" {
			h.Set([]byte("visits"), []byte("2"))
		}
		h.Delete([]byte("name"))
		return nil
	})
	fields, _ := n.HGetAll("user:42")
	for _, f := range fields {
		fmt.Printf("%s=%s\n", f.Name, f.Value)
	}
	_, err = n.Get("user:42")
	fmt.Println(errors.Is(err, geocache.ErrWrongType))
	// Output:
	// visits=2
	// true
}
