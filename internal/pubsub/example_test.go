package pubsub_test

import (
	"fmt"

	"github.com/geocache/geocache/internal/pubsub"
)

// printer prints what it receives.
type printer string

func (p printer) Message(channel string, payload []byte) {
	fmt.Printf("%s: message on %s: %s\n", p, channel, payload)
}

func (p printer) PMessage(pattern, channel string, payload []byte) {
	fmt.Printf("%s: %s matched %s: %s\n", p, pattern, channel, payload)
}

func Example() {
	h := pubsub.New()
	h.Subscribe(printer("a"), "news.uk", func() { fmt.Println("a: subscribed") })
	h.PSubscribe(printer("a"), "news.*", nil)
	h.PSubscribe(printer("b"), "news.[a-m]*", nil)
	fmt.Println("receivers:", h.Publish("news.uk", []byte("hello")))
	fmt.Println("receivers:", h.Publish("news.fr", []byte("bonjour")))
	fmt.Println("channels:", h.Channels(nil), "patterns:", h.NumPat())
	// Output:
	// a: subscribed
	// a: message on news.uk: hello
	// a: news.* matched news.uk: hello
	// receivers: 2
	// a: news.* matched news.fr: bonjour
	// b: news.[a-m]* matched news.fr: bonjour
	// receivers: 2
	// channels: [news.uk] patterns: 2
}
