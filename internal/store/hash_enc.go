package store

import (
	"bytes"
	"encoding/binary"
	"math/bits"

	"github.com/geocache/geocache/internal/hlc"
)

// Encoded hash states, read in place. The hot paths (HashUpdate, merging a
// state that supersedes the key's, checking an op) read the encoding
// where it lies instead of decoding it into a hashState: one walk, names
// and values as subslices, no allocation. They make the same checks as
// decodeHash and give the same results as the decoder, the join and the
// encoder would (hash_test.go compares them over random states).

// hashHeader is the fixed part of an encoded state.
type hashHeader struct {
	reset, ttl Version
	expireAt   int64
	n          int // the number of fields
	off        int // where the first field starts
}

// parseHashHeader reads the header of b with decodeHash's checks of it
// (the field count within the bound and the bytes left).
func parseHashHeader(b []byte) (hashHeader, bool) {
	var h hashHeader
	if len(b) < 1+12+12+1+1 || b[0] != hashFormat {
		return h, false
	}
	h.reset, h.ttl = versionAt(b, 1), versionAt(b, 13)
	off := 25
	if b[off] < 0x80 { // a small expiry (none: 0)
		h.expireAt = int64(b[off]>>1) ^ -int64(b[off]&1)
		off++
	} else {
		d := counterDecoder{b: b[off:]}
		if h.expireAt = d.varint(); d.bad {
			return h, false
		}
		off = len(b) - len(d.b)
	}
	n, l := uvarintAt(b, off)
	if l <= 0 || n > MaxHashFields || n > uint64(len(b)-off-l)/minFieldLen {
		return h, false
	}
	h.n, h.off = int(n), off+l
	return h, true
}

// versionAt reads the version encoded at b[off:] (appendVersion).
func versionAt(b []byte, off int) Version {
	return Version{HLC: hlc.Timestamp(binary.BigEndian.Uint64(b[off:])), Origin: binary.BigEndian.Uint32(b[off+8:])}
}

// rawField is one field of an encoded state, where it lies.
type rawField struct {
	name  []byte
	value []byte // nil for a deleted field
	ver   Version
	del   bool
	end   int // the offset just after the field
}

// uvarintAt reads a shortest-form uvarint at b[off:]; n <= 0 if there is
// none.
func uvarintAt(b []byte, off int) (v uint64, n int) {
	if off < len(b) && b[off] < 0x80 {
		return uint64(b[off]), 1
	}
	v, n = binary.Uvarint(b[off:])
	if n > 1 && b[off+n-1] == 0 {
		return 0, -1
	}
	return v, n
}

// parseField reads the field at b[off:] with decodeHash's checks of one
// field's bytes (all present, shortest-form lengths, a known flag).
func parseField(b []byte, off int) (f rawField, ok bool) {
	l, n := uvarintAt(b, off)
	if n <= 0 || l > uint64(len(b)-off-n) {
		return f, false
	}
	off += n
	f.name = b[off : off+int(l)]
	off += int(l)
	if len(b)-off < 12+1 {
		return f, false
	}
	f.ver = versionAt(b, off)
	off += 12
	switch b[off] {
	case 1:
		f.del = true
		f.end = off + 1
		return f, true
	case 0:
		off++
	default:
		return f, false
	}
	l, n = uvarintAt(b, off)
	if n <= 0 || l > uint64(len(b)-off-n) {
		return f, false
	}
	off += n
	f.value = b[off : off+int(l)]
	f.end = off + int(l)
	return f, true
}

// mustParseField is parseField of a state the store checked.
func mustParseField(b []byte, off int) rawField {
	f, ok := parseField(b, off)
	if !ok {
		panic("store: a stored hash does not decode")
	}
	return f
}

// hashSummary is what scanHash learns of a state.
type hashSummary struct {
	hashHeader
	version Version // the state's newest version (hashState.version)
	live    int     // fields with a value
}

// scanHash checks b as decodeHash does, without decoding it: ok is true
// exactly when decodeHash(b) succeeds.
func scanHash(b []byte) (s hashSummary, ok bool) {
	if s.hashHeader, ok = parseHashHeader(b); !ok {
		return s, false
	}
	s.version = maxVersion(s.reset, s.ttl)
	var prev []byte
	off := s.off
	for i := range s.n {
		f, ok := parseField(b, off)
		if !ok || f.ver.Compare(s.reset) <= 0 || i > 0 && bytes.Compare(prev, f.name) >= 0 {
			return s, false
		}
		if f.ver.Compare(s.version) > 0 {
			s.version = f.ver
		}
		if !f.del {
			s.live++
		}
		prev, off = f.name, f.end
	}
	ok = off == len(b) && s.expireAt >= 0 && s.ttl.Compare(s.reset) >= 0 && (s.ttl != s.reset || s.expireAt == 0) &&
		s.version.Compare(s.reset) > 0
	return s, ok
}

func maxVersion(a, b Version) Version {
	if b.Compare(a) > 0 {
		return b
	}
	return a
}

// rawNewer is fieldNewer of two encoded fields of the same name: whether y
// wins over x.
func rawNewer(y, x *rawField) bool {
	switch c := y.ver.Compare(x.ver); {
	case c != 0:
		return c > 0
	case x.del != y.del:
		return !y.del
	}
	return bytes.Compare(y.value, x.value) > 0
}

// supersedes reports, for a state in and the key's current state cur (one
// the store checked), whether joinHash(cur, in) is in itself: in's reset
// and expiry register are not older than cur's, and each of cur's fields
// is either dropped by in's reset or matched by one of in's that wins over
// it (or is the same). It is decided in one walk of both, which also
// checks in as decodeHash does: valid is false if in does not decode (then
// ok is false too). sum is in's summary when ok. When it is not ok, the
// caller joins the decoded states.
func supersedes(cur, in []byte) (sum hashSummary, ok, valid bool) {
	ch, _ := parseHashHeader(cur)
	ih, hok := parseHashHeader(in)
	if !hok {
		return sum, false, false
	}
	if ih.reset.Compare(ch.reset) < 0 {
		return sum, false, true
	}
	// (An expiry at in's reset is gone with it, whatever cur's at that
	// version says: joinHash.)
	if c := ih.ttl.Compare(ch.ttl); c < 0 || c == 0 && ih.expireAt < ch.expireAt && ih.ttl != ih.reset {
		return sum, false, true
	}
	sum.hashHeader = ih
	sum.version = maxVersion(ih.reset, ih.ttl)
	coff, cn := ch.off, ch.n // cur's next field and the number left
	var cf rawField          // cur's field at coff, once parsed
	var prev []byte          // in's last field's name
	off := ih.off
	for i := 0; i < ih.n; i++ {
		if cn > 0 {
			// Most of in's fields are the same bytes as cur's: the join
			// keeps them, and they are in order (cur's next field sorts
			// after in's fields so far). Their run is found by one
			// comparison, then walked field by field.
			if run := coff + commonPrefixLen(cur[coff:], in[off:]); run > coff {
				last := -1
				for cn > 0 && i < ih.n {
					end, ver, del := skipField(cur, coff)
					if end > run {
						break
					}
					if ver.Compare(ih.reset) <= 0 {
						return sum, false, false
					}
					if ver.Compare(sum.version) > 0 {
						sum.version = ver
					}
					if !del {
						sum.live++
					}
					last, off, coff, cn, i = coff, off+end-coff, end, cn-1, i+1
				}
				if last >= 0 {
					prev = mustParseField(cur, last).name
				}
				if i == ih.n {
					break
				}
			}
			if cn > 0 {
				cf = mustParseField(cur, coff)
			}
		}
		f, ok := parseField(in, off)
		if !ok || f.ver.Compare(ih.reset) <= 0 || i > 0 && bytes.Compare(prev, f.name) >= 0 {
			return sum, false, false
		}
		// cur's fields before f must go with in's reset; one of f's name
		// must lose to f.
		for cn > 0 {
			c := bytes.Compare(cf.name, f.name)
			if c > 0 {
				break
			}
			if c < 0 && cf.ver.Compare(ih.reset) > 0 ||
				c == 0 && !rawNewer(&f, &cf) && !(f.ver == cf.ver && f.del == cf.del && bytes.Equal(f.value, cf.value)) {
				return sum, false, true
			}
			coff, cn = cf.end, cn-1
			if cn > 0 {
				cf = mustParseField(cur, coff)
			}
		}
		if f.ver.Compare(sum.version) > 0 {
			sum.version = f.ver
		}
		if !f.del {
			sum.live++
		}
		prev, off = f.name, f.end
	}
	for cn > 0 { // cur's fields after in's last
		end, ver, _ := skipField(cur, coff)
		if ver.Compare(ih.reset) > 0 {
			return sum, false, true
		}
		coff, cn = end, cn-1
	}
	if off != len(in) || ih.expireAt < 0 || ih.ttl.Compare(ih.reset) < 0 || ih.ttl == ih.reset && ih.expireAt != 0 ||
		sum.version.Compare(ih.reset) <= 0 {
		return sum, false, false
	}
	return sum, true, true
}

// skipField reads the field at b[off:] of a state the store checked: its
// end, version and whether it is deleted.
func skipField(b []byte, off int) (end int, ver Version, del bool) {
	l, n := uvarintAt(b, off)
	off += n + int(l)
	ver = versionAt(b, off)
	off += 12
	if b[off] != 0 {
		return off + 1, ver, true
	}
	l, n = uvarintAt(b, off+1)
	return off + 1 + n + int(l), ver, false
}

// commonPrefixLen is the length of the longest common prefix of a and b.
func commonPrefixLen(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for ; i+128 <= n && bytes.Equal(a[i:i+128], b[i:i+128]); i += 128 { // the runtime's vector compare
	}
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}

// fieldLen is the encoded length of a field.
func fieldLen(name, value []byte, del bool) int {
	n := uvarintLen(uint64(len(name))) + len(name) + 12 + 1
	if !del {
		n += uvarintLen(uint64(len(value))) + len(value)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

func appendField(b, name, value []byte, ver Version, del bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = appendVersion(b, ver)
	if del {
		return append(b, 1)
	}
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(value)))
	return append(b, value...)
}
