package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond every 5 ms until it holds, and fails t (naming
// what it waited for) if it does not within 10 s: for what replication or
// a background goroutine makes true asynchronously.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
