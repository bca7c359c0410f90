package geocache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// inbox records the messages a node's listener receives.
type inbox struct {
	mu  sync.Mutex
	got []string
}

func (b *inbox) listen(channel string, payload []byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, channel+"="+string(payload))
	return 1
}

func (b *inbox) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = nil
}

func (b *inbox) list() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// A message published in one region reaches the listeners of every region
// once, in the publisher's order, after the writes the publisher made
// before it; PUBLISH's count is this node's receivers only.
func TestPublishReachesEveryRegion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu", "ap"}, 20*time.Millisecond, nil)
		m.startAll()
		m.linked()
		boxes := make([]*inbox, 3)
		for i, n := range m.nodes {
			boxes[i] = &inbox{}
			n.OnMessage(boxes[i].listen)
		}
		extra := &inbox{}
		remove := m.nodes[0].OnMessage(extra.listen)

		ctx := context.Background()
		var want []string
		for i := range 20 {
			key := fmt.Sprint("user:", i)
			if err := m.nodes[0].Set(ctx, key, []byte("v")); err != nil {
				t.Fatal(err)
			}
			got, err := m.nodes[0].Publish(ctx, "invalidate", []byte(key))
			if err != nil {
				t.Fatal(err)
			}
			if wantN := map[bool]int{true: 2, false: 1}[i < 10]; got != wantN {
				t.Fatalf("Publish #%d reached %d receivers here, want %d", i, got, wantN)
			}
			if i == 9 {
				remove()
				remove() // idempotent
			}
			want = append(want, "invalidate="+key)
		}
		for i, b := range boxes {
			testkit.Eventually(t, fmt.Sprintf("%s to get 20 messages", m.names[i]), func() bool { return len(b.list()) >= 20 })
			if !slices.Equal(b.list(), want) {
				t.Errorf("%s received %v, want %v", m.names[i], b.list(), want)
			}
		}
		if n := len(extra.list()); n != 10 {
			t.Errorf("the removed listener got %d messages, want 10", n)
		}
		// Each message follows the write before it: a listener that reads
		// the key it is told about finds the write.
		checked := &inbox{}
		m.nodes[2].OnMessage(func(channel string, payload []byte) int {
			if _, err := m.nodes[2].Get(string(payload)); err != nil {
				checked.listen("missing", payload)
			}
			return 1
		})
		if err := m.nodes[1].Set(ctx, "fresh", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if _, err := m.nodes[1].Publish(ctx, "invalidate", []byte("fresh")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "ap to get eu's message", func() bool { return len(boxes[2].list()) == 21 })
		if got := checked.list(); len(got) != 0 {
			t.Errorf("messages arrived before the writes made before them: %v", got)
		}
		for i, n := range m.nodes {
			if _, err := n.Get("invalidate"); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s stored the channel as a key: %v", m.names[i], err)
			}
		}
	})
}

// A message published while a region is cut off is not lost while the
// origin's log still holds it: the stream resumes where it stopped, and
// nothing arrives twice.
func TestPublishAcrossPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 10*time.Millisecond, nil)
		m.startAll()
		m.linked()
		b := &inbox{}
		m.nodes[1].OnMessage(b.listen)
		ctx := context.Background()
		m.net.Isolate("us")
		for i := range 5 {
			if _, err := m.nodes[0].Publish(ctx, "ch", fmt.Append(nil, i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		if got := b.list(); len(got) != 0 {
			t.Fatalf("eu received %v through a partition", got)
		}
		m.net.Rejoin("us")
		testkit.Eventually(t, "eu to get the 5 messages", func() bool { return len(b.list()) >= 5 })
		time.Sleep(time.Second) // anything more would arrive by now
		if got, want := strings.Join(b.list(), " "), "ch=0 ch=1 ch=2 ch=3 ch=4"; got != want {
			t.Errorf("eu received %q, want %q", got, want)
		}
	})
}

func TestPublishLimits(t *testing.T) {
	n, err := Open(Config{MaxValueBytes: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	if _, err := n.Publish(ctx, "ch", make([]byte, 17)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a payload over MaxValueBytes: %v, want ErrTooLarge", err)
	}
	if _, err := n.Publish(ctx, strings.Repeat("c", MaxKeyBytes+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a channel over MaxKeyBytes: %v, want ErrTooLarge", err)
	}
	// The caller's buffer is the caller's: the node keeps a copy.
	var got []string
	n.OnMessage(func(channel string, payload []byte) int { got = append(got, string(payload)); return 0 })
	buf := []byte("one")
	if k, err := n.Publish(ctx, "ch", buf); err != nil || k != 0 {
		t.Fatalf("Publish = %d, %v", k, err)
	}
	copy(buf, "two")
	if !slices.Equal(got, []string{"one"}) {
		t.Errorf("listener got %v", got)
	}
}

// A session's batch reaches every other node as one unit: their gates see
// one batch with every key, in order, and the message published inside
// it arrives after its writes.
func TestSessionBatchReplicatesAsOneUnit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newMemCluster(t, []string{"us", "eu"}, 10*time.Millisecond, nil)
		m.startAll()
		m.linked()
		us, eu := m.nodes[0], m.nodes[1]
		var mu sync.Mutex
		var batches [][]string
		eu.SetBatchGate(func(keys []string, apply func()) {
			mu.Lock()
			batches = append(batches, slices.Clone(keys))
			mu.Unlock()
			apply()
		})
		var seen inbox
		eu.OnMessage(func(channel string, payload []byte) int {
			v, _ := eu.Get("b")
			seen.listen(channel, v) // what eu holds of b when the message arrives
			return 1
		})
		ctx := context.Background()
		s := us.NewSession()
		s.BeginBatch()
		if err := s.Set(ctx, "a", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Publish(ctx, "ch", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if err := s.Set(ctx, "b", []byte("2")); err != nil {
			t.Fatal(err)
		}
		if err := s.EndBatch(ctx); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "eu to apply the batch", func() bool {
			v, err := eu.Get("b")
			return err == nil && string(v) == "2" && len(seen.list()) == 1
		})
		mu.Lock()
		defer mu.Unlock()
		if len(batches) != 1 || !slices.Equal(batches[0], []string{"a", "gone", "b"}) {
			t.Errorf("eu's gate saw %v, want one batch of a, gone, b", batches)
		}
		if got := seen.list(); !slices.Equal(got, []string{"ch=2"}) {
			t.Errorf("the message arrived with b = %v, want after the batch (ch=2)", got)
		}
		if err := s.EndBatch(ctx); err != nil { // no batch open: nothing to do
			t.Fatal(err)
		}
	})
}
