package hlc_test

import (
	"fmt"
	"time"

	"github.com/geocache/geocache/internal/hlc"
	"github.com/geocache/geocache/internal/testkit"
)

func Example() {
	physical := testkit.NewClock(time.UnixMilli(1732580000123))
	clock, err := hlc.New(hlc.Config{Physical: physical})
	if err != nil {
		panic(err)
	}
	a, _ := clock.Now()
	b, _ := clock.Now() // same millisecond: the counter moves
	fmt.Println(a, b)

	physical.Advance(-time.Second) // physical time steps back
	c, _ := clock.Now()            // the clock does not
	fmt.Println(c)

	// A message from a node whose clock is 2 ms ahead.
	received := clock.Update(hlc.MakeTimestamp(1732580000125, 4))
	fmt.Println(received, received.WallMillis(), received.Logical())

	physical.Advance(2 * time.Second) // physical time overtakes: counter restarts
	d, _ := clock.Now()
	fmt.Println(d)
	// Output:
	// 1732580000123.0 1732580000123.1
	// 1732580000123.2
	// 1732580000125.5 1732580000125 5
	// 1732580001123.0
}

func ExampleClock_ObservePeerOffset() {
	physical := testkit.NewClock(time.UnixMilli(1732580000123))
	clock, _ := hlc.New(hlc.Config{Physical: physical, MaxOffset: 500 * time.Millisecond})

	// Round trips measured by the transport: two of three peers see our
	// clock 3 s off, so ours is the clock at fault.
	clock.ObservePeerOffset("eu-west", hlc.EstimateOffset(1_000, 3_000_000_050, 100))
	clock.ObservePeerOffset("us-east", 3*time.Second)
	clock.ObservePeerOffset("ap-south", 20*time.Millisecond)
	_, err := clock.Now()
	fmt.Println(clock.InBounds(), err)

	clock.ObservePeerOffset("us-east", 10*time.Millisecond) // clock fixed
	ts, err := clock.Now()
	fmt.Println(clock.InBounds(), ts, err)
	// Output:
	// false hlc: clock out of bounds relative to most peers
	// true 1732580000123.0 <nil>
}
