package chaos

import (
	"testing"
	"time"
)

// Synthetic hash histories: the hash check must pass final states that
// merge the fields every region wrote, and fail divergence and values no
// HSET of the field wrote.

// hset appends an HSET (or, with value "", an HDEL) of key's field on node
// n, with status st.
func (h *hist) hset(n int, key, field, value string, start time.Duration, st string) *Op {
	kind := KindHSet
	if value == "" {
		kind = KindHDel
	}
	o := h.op(n, kind, key, start, start+time.Millisecond)
	o.Field, o.Value, o.Status = field, value, st
	return o
}

// hashHist is three regions writing h at once: f0 on node 1, then f0 and
// f1 on node 2, f1 on node 3 failing (never applied), and node 3 deleting
// f2 after node 1 wrote it.
func hashHist() *hist {
	h := newHist()
	h.hset(0, "h", "f0", "a", time.Second, StatusOK)
	h.hset(1, "h", "f0", "b", 2*time.Second, StatusOK)
	h.hset(1, "h", "f1", "c", 2*time.Second, StatusUnknown)
	h.hset(2, "h", "f1", "x", 2*time.Second, StatusFail).Err = "TRYAGAIN clock"
	h.hset(0, "h", "f2", "d", 3*time.Second, StatusOK)
	h.hset(2, "h", "f2", "", 4*time.Second, StatusOK)
	h.final(nil)
	return h
}

func (h *hist) hashes(states [3]HashState) {
	f := h.in.Final
	f.HashKeys = []string{"h"}
	f.Hashes = [][]HashState{{states[0]}, {states[1]}, {states[2]}}
}

func TestCheckHashes(t *testing.T) {
	merged := HashState{"f0": "b", "f1": "c"}
	h := hashHist()
	h.hashes([3]HashState{merged, merged, merged})
	res := h.expect(t)
	if hf := res.Hashes; hf.Keys != 1 || hf.HSets != 5 || hf.HDels != 1 || hf.Acked != 4 || hf.Nodes != 3 || hf.Fields != 6 ||
		res.Checked[CheckHashPhantom] != 6 || res.Checked[CheckHashConv] != 1 || res.Checked[CheckHashLost] != 3 {
		t.Errorf("hash figures %+v, checked %v", hf, res.Checked)
	}
	for _, tt := range []struct {
		name   string
		states [3]HashState
		want   []string
	}{
		{"one node without a field", [3]HashState{merged, merged, {"f0": "b"}}, []string{CheckHashConv}},
		{"a failed HSET's value", [3]HashState{{"f0": "b", "f1": "x"}, {"f0": "b", "f1": "x"}, {"f0": "b", "f1": "x"}}, []string{CheckHashPhantom}},
		{"another field's value", [3]HashState{{"f0": "c"}, {"f0": "c"}, {"f0": "c"}}, []string{CheckHashPhantom}},
		{"nodes apart on a value", [3]HashState{merged, {"f0": "a", "f1": "c"}, merged}, []string{CheckHashConv}},
		// whole-hash last-writer-wins: node 3's HDEL, the newest write,
		// carried a state without the fields it had not seen
		{"a field never deleted lost", [3]HashState{{"f1": "c"}, {"f1": "c"}, {"f1": "c"}}, []string{CheckHashLost}},
		// f1's only HSET is of unknown outcome: it may be lost; f2 was
		// deleted
		{"fields that may be gone", [3]HashState{{"f0": "b"}, {"f0": "b"}, {"f0": "b"}}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := hashHist()
			h.hashes(tt.states)
			h.expect(t, tt.want...)
		})
	}
}
