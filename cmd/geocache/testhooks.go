package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/geocache/geocache/internal/clock"
)

// Test hooks of geocache serve. They are not flags and not in the help:
// each is an environment variable named GEOCACHE_TEST_*, read by serve
// alone, and a node that runs with one set logs a warning. The chaos
// harness (internal/chaos) sets them in the environment of the nodes it
// starts; a production deployment has no reason to.

// testClockOffsetVar shifts the node's physical clock by a duration
// ("250ms", "-1s"), to inject clock skew.
const testClockOffsetVar = "GEOCACHE_TEST_CLOCK_OFFSET"

// testHookVars are the variables of the test hooks; parseServeConfig
// neither maps them to flags nor reports them as unknown.
var testHookVars = []string{testClockOffsetVar}

func isTestHookVar(name string) bool { return slices.Contains(testHookVars, name) }

// testHooks are the test hooks a node runs with; the zero value is none.
type testHooks struct {
	clockOffset time.Duration // GEOCACHE_TEST_CLOCK_OFFSET
}

// readTestHooks reads the test hooks from environ ("KEY=value" entries;
// an empty value counts as unset). Errors wrap errUsage.
func readTestHooks(environ []string) (testHooks, error) {
	var h testHooks
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if k != testClockOffsetVar || v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return h, fmt.Errorf("%w: invalid value %q for %s: a duration such as 250ms or -1s", errUsage, v, k)
		}
		h.clockOffset = d
	}
	return h, nil
}

// skewedClock is the real clock shifted by an offset
// (GEOCACHE_TEST_CLOCK_OFFSET).
type skewedClock struct {
	real   *clock.Real
	offset int64
}

func (c skewedClock) UnixNano() int64 { return c.real.UnixNano() + c.offset }
