package pubsub

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/glob"
)

// recorder is a Subscriber that keeps what it receives, rendered
// "channel=payload" or "pattern:channel=payload".
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) Message(channel string, payload []byte) {
	r.mu.Lock()
	r.got = append(r.got, channel+"="+string(payload))
	r.mu.Unlock()
}

func (r *recorder) PMessage(pattern, channel string, payload []byte) {
	r.mu.Lock()
	r.got = append(r.got, pattern+":"+channel+"="+string(payload))
	r.mu.Unlock()
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

func TestPublishCounts(t *testing.T) {
	h := New()
	a, b := &recorder{}, &recorder{}
	if n := h.Publish("news", []byte("x")); n != 0 {
		t.Fatalf("Publish without subscribers = %d", n)
	}
	h.Subscribe(a, "news", nil)
	h.Subscribe(a, "news", nil) // twice is once
	h.Subscribe(b, "news", nil)
	h.PSubscribe(a, "n*", nil)
	h.PSubscribe(a, "n*", nil)
	h.PSubscribe(a, "*s", nil)
	h.PSubscribe(b, "sport", nil)
	// a: the channel and two patterns; b: the channel.
	if n := h.Publish("news", []byte("hi")); n != 4 {
		t.Errorf("Publish(news) = %d; want 4 (a counts three times, b once)", n)
	}
	gotA := a.take()
	if len(gotA) != 3 || gotA[0] != "news=hi" || !slices.Contains(gotA, "n*:news=hi") || !slices.Contains(gotA, "*s:news=hi") {
		t.Errorf("a received %q; want the message first, then both pmessages", gotA)
	}
	if got := b.take(); !slices.Equal(got, []string{"news=hi"}) {
		t.Errorf("b received %q", got)
	}
	if n := h.Publish("sport", []byte("goal")); n != 1 {
		t.Errorf("Publish(sport) = %d; want 1 (b's pattern without wildcards)", n)
	}
	if n := h.Publish("nothing", nil); n != 1 {
		t.Errorf("Publish(nothing) = %d; want 1 (a's n*)", n)
	}
	if got := b.take(); !slices.Equal(got, []string{"sport:sport=goal"}) {
		t.Errorf("b received %q", got)
	}

	if got := h.Channels(nil); !slices.Equal(got, []string{"news"}) {
		t.Errorf("Channels(nil) = %q", got)
	}
	if got, want := h.NumSub("news"), 2; got != want {
		t.Errorf("NumSub(news) = %d; want %d", got, want)
	}
	if got := h.NumSub("sport"); got != 0 {
		t.Errorf("NumSub(sport) = %d; want 0: patterns do not count", got)
	}
	if got := h.NumPat(); got != 3 {
		t.Errorf("NumPat = %d; want 3 distinct patterns", got)
	}

	h.Unsubscribe(a, "news")
	h.Unsubscribe(a, "news")
	h.Unsubscribe(a, "never")
	h.PUnsubscribe(a, "n*")
	h.PUnsubscribe(b, "n*") // not b's
	if n := h.Publish("news", []byte("x")); n != 2 {
		t.Errorf("after unsubscribing: Publish(news) = %d; want 2 (b, and a's *s)", n)
	}
	h.Unsubscribe(b, "news")
	h.PUnsubscribe(a, "*s")
	h.PUnsubscribe(b, "sport")
	if n := h.Publish("news", []byte("x")); n != 0 {
		t.Errorf("after unsubscribing everything: Publish = %d", n)
	}
	if len(h.channels) != 0 || len(h.patterns) != 0 || len(h.patList) != 0 {
		t.Errorf("an empty hub holds %d channels, %d patterns, %d listed patterns", len(h.channels), len(h.patterns), len(h.patList))
	}
}

func TestChannelsPattern(t *testing.T) {
	h := New()
	s := &recorder{}
	for _, ch := range []string{"news.uk", "news.fr", "sport", "News.de", ""} {
		h.Subscribe(s, ch, nil)
	}
	h.PSubscribe(s, "weather.*", nil) // a pattern is not a channel
	for _, tt := range []struct {
		pattern string
		want    []string
	}{
		{"news.*", []string{"news.fr", "news.uk"}},
		{"*", []string{"News.de", "news.fr", "news.uk", "sport"}}, // not "": Redis's matcher
		{"[Nn]ews.??", []string{"News.de", "news.fr", "news.uk"}},
		{"weather.*", []string{}},
		{"", []string{""}},
	} {
		if got := h.Channels([]byte(tt.pattern)); !slices.Equal(got, tt.want) {
			t.Errorf("Channels(%q) = %q; want %q", tt.pattern, got, tt.want)
		}
	}
	if got := h.Channels(nil); len(got) != 5 {
		t.Errorf("Channels(nil) = %q; want all 5", got)
	}
	if got := h.NumChannels(); got != 5 {
		t.Errorf("NumChannels = %d; want 5", got)
	}
}

// TestPatternRemovalKeepsOthers removes patterns from the middle, the end
// and the start of the walk list: the others still match.
func TestPatternRemovalKeepsOthers(t *testing.T) {
	h := New()
	s := &recorder{}
	pats := []string{"a*", "b*", "c*", "d*", "e*"}
	for _, p := range pats {
		h.PSubscribe(s, p, nil)
	}
	for _, p := range []string{"c*", "e*", "a*"} {
		h.PUnsubscribe(s, p)
		pats = slices.DeleteFunc(pats, func(x string) bool { return x == p })
		for _, q := range []string{"a", "b", "c", "d", "e"} {
			want := 0
			if slices.Contains(pats, q+"*") {
				want = 1
			}
			if n := h.Publish(q+"1", nil); n != want {
				t.Fatalf("after removing %s: Publish(%s1) = %d; want %d", p, q, n, want)
			}
		}
		for i, x := range h.patList {
			if x.index != i {
				t.Fatalf("pattern %q at %d believes it is at %d", x.text, i, x.index)
			}
		}
	}
}

// counter is a Subscriber that only counts, for the concurrency test.
type counter struct{ n atomic.Int64 }

func (c *counter) Message(string, []byte)          { c.n.Add(1) }
func (c *counter) PMessage(string, string, []byte) { c.n.Add(1) }

// TestConcurrentAgainstModel: subscribers change their subscriptions while
// others publish; once they stop, every count the hub answers matches a
// trivial model of the final subscriptions. Run with -race.
func TestConcurrentAgainstModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	h := New()
	const subscribers = 8
	subs := make([]*counter, subscribers)
	// model[i] is subscriber i's final channels and patterns; each
	// subscriber changes only its own, as connections do.
	type model struct{ channels, patterns map[string]bool }
	models := make([]model, subscribers)
	names := []string{"a", "b", "ab", "ba", "c"}
	patterns := []string{"a*", "*b", "?", "[ab]*", "c"}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					h.Publish("ab", []byte("x"))
				}
			}
		})
	}
	var changers sync.WaitGroup
	for i := range subscribers {
		subs[i] = &counter{}
		models[i] = model{map[string]bool{}, map[string]bool{}}
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		changers.Go(func() {
			m := models[i]
			for range 500 {
				switch r.IntN(4) {
				case 0:
					ch := names[r.IntN(len(names))]
					h.Subscribe(subs[i], ch, nil)
					m.channels[ch] = true
				case 1:
					ch := names[r.IntN(len(names))]
					h.Unsubscribe(subs[i], ch)
					delete(m.channels, ch)
				case 2:
					p := patterns[r.IntN(len(patterns))]
					h.PSubscribe(subs[i], p, nil)
					m.patterns[p] = true
				case 3:
					p := patterns[r.IntN(len(patterns))]
					h.PUnsubscribe(subs[i], p)
					delete(m.patterns, p)
				}
			}
		})
	}
	changers.Wait()
	close(stop)
	wg.Wait()

	distinct := map[string]bool{}
	for _, m := range models {
		for p := range m.patterns {
			distinct[p] = true
		}
	}
	if got := h.NumPat(); got != len(distinct) {
		t.Errorf("NumPat = %d; the model has %d distinct patterns", got, len(distinct))
	}
	var active []string
	for _, ch := range names {
		want := 0
		for _, m := range models {
			if m.channels[ch] {
				want++
			}
		}
		if want > 0 {
			active = append(active, ch)
		}
		if got := h.NumSub(ch); got != want {
			t.Errorf("NumSub(%s) = %d; model %d", ch, got, want)
		}
		deliveries := want
		for _, m := range models {
			for p := range m.patterns {
				if glob.Match(p, ch, false) {
					deliveries++
				}
			}
		}
		if got := h.Publish(ch, nil); got != deliveries {
			t.Errorf("Publish(%s) = %d; model %d", ch, got, deliveries)
		}
	}
	slices.Sort(active)
	if got := h.Channels(nil); !slices.Equal(got, active) {
		t.Errorf("Channels = %q; model %q", got, active)
	}
}

// TestPublishNoSubscribersAllocs: publishing allocates nothing, with or
// without subscribers (the subscribers' own copies aside).
func TestPublishAllocs(t *testing.T) {
	h := New()
	payload := []byte("payload")
	if n := testing.AllocsPerRun(100, func() { h.Publish("nobody", payload) }); n != 0 {
		t.Errorf("Publish to no subscriber allocates %v times", n)
	}
	h.Subscribe(&counter{}, "news", nil)
	h.PSubscribe(&counter{}, "n*", nil)
	if n := testing.AllocsPerRun(100, func() { h.Publish("news", payload) }); n != 0 {
		t.Errorf("Publish to two subscribers allocates %v times", n)
	}
}

func BenchmarkPublish(b *testing.B) {
	payload := []byte("a message of some forty bytes, give or take")
	for _, bc := range []struct {
		name     string
		subs     int
		patterns int
	}{
		{"nobody", 0, 0},
		{"other-channels-1000", 1000, 0},
		{"1-subscriber", 1, 0},
		{"100-subscribers", 100, 0},
		{"100-patterns-none-match", 0, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := New()
			for i := range bc.subs {
				ch := "news"
				if bc.name == "other-channels-1000" {
					ch = fmt.Sprint("other.", i)
				}
				h.Subscribe(&counter{}, ch, nil)
			}
			for i := range bc.patterns {
				h.PSubscribe(&counter{}, fmt.Sprint("weather.", i, ".*"), nil)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h.Publish("news", payload)
				}
			})
		})
	}
}

// TestSubscribeThenComesFirst: what Subscribe's then records comes before
// every message of the subscription, however busy the channel, and after
// the subscription exists (a Publish from then's caller reaches it).
func TestSubscribeThenComesFirst(t *testing.T) {
	h := New()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				h.Publish("c", []byte("m"))
			}
		}
	})
	for i := range 200 {
		r := &recorder{}
		confirm := func() { r.Message("confirmed", nil) }
		if i%2 == 0 {
			h.Subscribe(r, "c", confirm)
		} else {
			h.PSubscribe(r, "c", confirm)
		}
		if n := h.Publish("c", []byte("m")); n < 1 {
			t.Fatalf("Publish after Subscribe returned = %d", n)
		}
		if got := r.take(); len(got) < 2 || got[0] != "confirmed=" {
			t.Fatalf("round %d: the subscriber got %q; want the confirmation first", i, got)
		}
		h.Unsubscribe(r, "c")
		h.PUnsubscribe(r, "c")
	}
	close(stop)
	wg.Wait()
}
