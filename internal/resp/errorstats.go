package resp

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// errorStats counts error replies by their code, the first word of the
// message ("ERR", "WRONGPASS", "NOAUTH" ...), as Redis's INFO errorstats:
// Redis looks for the space in the first 32 bytes of "-CODE ...", and
// counts a reply without one there as ERR. The codes come from this
// package's own texts, but the table is bounded all the same: past
// maxErrorCodes distinct codes, a new one counts as ERR. The zero value
// is ready to use.
type errorStats struct {
	mu    sync.RWMutex
	codes map[string]*atomic.Uint64
}

const maxErrorCodes = 128

// count counts the error reply msg ("CODE text"). It allocates only the
// first time a code is seen.
func (e *errorStats) count(msg string) {
	code := "ERR"
	if i := strings.IndexByte(msg[:min(len(msg), 31)], ' '); i > 0 {
		code = msg[:i]
	}
	e.mu.RLock()
	n := e.codes[code]
	e.mu.RUnlock()
	if n == nil {
		n = e.add(code)
	}
	n.Add(1)
}

func (e *errorStats) add(code string) *atomic.Uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.codes == nil {
		e.codes = make(map[string]*atomic.Uint64)
	}
	if n := e.codes[code]; n != nil {
		return n
	}
	if len(e.codes) >= maxErrorCodes {
		code = "ERR"
		if n := e.codes[code]; n != nil {
			return n
		}
	}
	n := new(atomic.Uint64)
	e.codes[strings.Clone(code)] = n
	return n
}

// reset forgets every code and its count (CONFIG RESETSTAT). An error
// counted at the same time may be lost.
func (e *errorStats) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes = nil
}

// snapshot returns the codes seen, sorted as Redis lists them (its radix
// tree's order), with their counts.
func (e *errorStats) snapshot() (codes []string, counts []uint64) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	codes = slices.Sorted(maps.Keys(e.codes))
	for _, c := range codes {
		counts = append(counts, e.codes[c].Load())
	}
	return codes, counts
}
