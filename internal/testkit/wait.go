package testkit

import (
	"testing"
	"time"
)

// EventuallyTimeout is how long Eventually waits before it gives up. It only
// catches a hang: a loaded machine may take seconds for what an idle one does
// in milliseconds, and a test must not fail for that.
const EventuallyTimeout = time.Minute

// Eventually polls cond every 5 ms until it holds, and fails t (naming
// what it waited for) if it does not within EventuallyTimeout: for what
// replication or a background goroutine makes true asynchronously. Inside
// a testing/synctest bubble both the polling and the timeout run on the
// bubble's virtual clock.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(EventuallyTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", EventuallyTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
