package chaos

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Version is a key's version as GEOCACHE VERSION reports it: the hybrid
// logical clock value, the origin node id, the expiry in Unix ms (-1 for
// none) and whether it is a remembered delete.
type Version struct {
	HLC      uint64 `json:"hlc"`
	Origin   uint32 `json:"origin"`
	ExpireAt int64  `json:"expire_at_ms"`
	Deleted  bool   `json:"deleted,omitempty"`
}

// Compare orders versions as geocache does: by HLC, then origin.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.HLC, w.HLC); c != 0 {
		return c
	}
	return cmp.Compare(v.Origin, w.Origin)
}

// WallNS is the physical part of the HLC (ms << 16 | logical), in Unix ns.
func (v Version) WallNS() int64 { return int64(v.HLC>>16) * int64(time.Millisecond) }

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d@%d", v.HLC>>16, v.HLC&0xffff, v.Origin)
	switch {
	case v.Deleted:
		s += "(deleted)"
	case v.ExpireAt >= 0:
		s += fmt.Sprintf("(exp %d)", v.ExpireAt)
	}
	return s
}

// parseVersion reads a GEOCACHE VERSION reply: [hlc, origin, expire-at]
// or [hlc, origin, -1, "deleted"]; nil (redis.Nil) is (nil, nil).
func parseVersion(v any, err error) (*Version, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok || (len(a) != 3 && len(a) != 4) {
		return nil, fmt.Errorf("GEOCACHE VERSION reply %v: not an array of 3 or 4", v)
	}
	var n [3]int64
	for i := range n {
		x, ok := a[i].(int64)
		if !ok {
			return nil, fmt.Errorf("GEOCACHE VERSION reply %v: element %d is not an integer", v, i)
		}
		n[i] = x
	}
	ver := &Version{HLC: uint64(n[0]), Origin: uint32(n[1]), ExpireAt: n[2]}
	if len(a) == 4 {
		if s, _ := a[3].(string); s != "deleted" {
			return nil, fmt.Errorf("GEOCACHE VERSION reply %v: fourth element is not \"deleted\"", v)
		}
		ver.Deleted = true
	}
	return ver, nil
}

// Op statuses.
const (
	StatusOK       = "ok"       // the command succeeded
	StatusFail     = "fail"     // an error reply that means nothing was written (-TRYAGAIN, -ERR)
	StatusUnknown  = "unknown"  // no reply (connection lost, timeout): it may or may not be applied
	StatusNotAcked = "notacked" // -TIMEOUT: applied locally, not acknowledged by a quorum
	StatusNoop     = "noop"     // PEXPIRE or PERSIST that wrote nothing
)

// Op kinds.
const (
	KindSet     = "set"
	KindDel     = "del"
	KindPExpire = "pexpire"
	KindPersist = "persist"
	KindGet     = "get"
	// KindIncr is an increment of a counter key by Delta (INCR, INCRBY,
	// DECR or DECRBY); Value is the node's reply, the counter's value
	// there right after it.
	KindIncr = "incr"
	// KindHSet writes Field of a hash key with Value (HSET); KindHDel
	// deletes Field (HDEL).
	KindHSet = "hset"
	KindHDel = "hdel"
)

// Op is one operation of the history.
type Op struct {
	ID     int `json:"id"`
	Client int `json:"client"` // -1: the visibility prober
	Node   int `json:"node"`   // index (node id - 1)
	// Quorum: sent at the Quorum acknowledgement level or stronger; All:
	// at the All level (Quorum is set too).
	Quorum bool   `json:"quorum,omitempty"`
	All    bool   `json:"all,omitempty"`
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	// Value is what a set wrote, or what a get read (if Found).
	Value string        `json:"value,omitempty"`
	Found bool          `json:"found,omitempty"`
	TTL   time.Duration `json:"ttl_ns,omitempty"` // set with PX, pexpire
	Delta int64         `json:"delta,omitempty"`  // incr
	Field string        `json:"field,omitempty"`  // hset, hdel
	// Large: a set whose value was Value padded to a large size
	// (padValue); Value is the tag.
	Large bool `json:"large,omitempty"`
	// Invoke and Complete are real times in Unix ns.
	Invoke   int64  `json:"t0"`
	Complete int64  `json:"t1"`
	Status   string `json:"status"`
	Err      string `json:"err,omitempty"`
	// Late marks an op given up on by timeout: the node may still run it
	// after Complete.
	Late bool `json:"late,omitempty"`
	// Ver is what GEOCACHE VERSION answered right after a write on the same
	// connection; Own says it is this write's own version.
	Ver *Version `json:"ver,omitempty"`
	Own bool     `json:"own,omitempty"`
	// Inc0 and Inc1 are the node's incarnation at invoke and completion.
	Inc0 int `json:"inc0"`
	Inc1 int `json:"inc1"`
	// Waited marks a write followed by WAIT <regions-1> on the same
	// connection; Wait is its reply (how many other regions had applied
	// the connection's writes), -1 if it got none.
	Waited bool `json:"waited,omitempty"`
	Wait   int  `json:"wait,omitempty"`
}

func (o *Op) write() bool { return o.Kind != KindGet }

// mayApply reports whether the op may have taken effect.
func (o *Op) mayApply() bool {
	return o.write() && (o.Status == StatusOK || o.Status == StatusUnknown || o.Status == StatusNotAcked)
}

// known is the write's own version, if known.
func (o *Op) known() (Version, bool) {
	if o.Own && o.Ver != nil && (o.Status == StatusOK || o.Status == StatusNotAcked) {
		return *o.Ver, true
	}
	return Version{}, false
}

// Format is one line of the history, times relative to base.
func (o *Op) Format(base int64) string {
	var b strings.Builder
	lvl := "L"
	switch {
	case o.All:
		lvl = "A"
	case o.Quorum:
		lvl = "Q"
	}
	fmt.Fprintf(&b, "#%d c%d n%d/%d %s %-7s %s", o.ID, o.Client, o.Node+1, o.Inc0, lvl, o.Kind, o.Key)
	switch o.Kind {
	case KindSet:
		fmt.Fprintf(&b, " %q", o.Value)
		if o.TTL > 0 {
			fmt.Fprintf(&b, " px=%d", o.TTL.Milliseconds())
		}
	case KindPExpire:
		fmt.Fprintf(&b, " px=%d", o.TTL.Milliseconds())
	case KindHSet:
		fmt.Fprintf(&b, " %s=%q", o.Field, o.Value)
	case KindHDel:
		fmt.Fprintf(&b, " %s", o.Field)
	case KindIncr:
		fmt.Fprintf(&b, " %+d", o.Delta)
		if o.Value != "" {
			fmt.Fprintf(&b, " -> %s", o.Value)
		}
	case KindGet:
		if o.Found {
			fmt.Fprintf(&b, " -> %q", o.Value)
		} else if o.Status == StatusOK {
			b.WriteString(" -> nil")
		}
	}
	fmt.Fprintf(&b, " [%.3f, %.3f]s %s", float64(o.Invoke-base)/1e9, float64(o.Complete-base)/1e9, o.Status)
	if o.Err != "" {
		fmt.Fprintf(&b, " (%s)", o.Err)
	}
	if o.Late {
		b.WriteString(" late")
	}
	if o.Waited {
		fmt.Fprintf(&b, " wait=%d", o.Wait)
	}
	if o.Ver != nil {
		own := "other"
		if o.Own {
			own = "own"
		}
		fmt.Fprintf(&b, " ver %s %s", o.Ver, own)
	}
	return b.String()
}
