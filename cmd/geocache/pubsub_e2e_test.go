package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Real processes over mutual TLS: a message PUBLISHed in us reaches
// subscribers in eu and ap once, in order; ap, started with
// --notify-keyspace-events, announces a key written in us and expired
// everywhere; a MULTI/EXEC in eu arrives whole in the other regions.
func TestE2EPubSubAcrossRegions(t *testing.T) {
	bin := e2eBinary(t)
	dir := e2eCerts(t, bin, e2eRegions...)
	c := startE2ECluster(t, func(i int, n *e2eNode) {
		n.args = append(n.args, e2eTLSFlags(dir, e2eRegions[i])...)
		if e2eRegions[i] == "ap" {
			n.args = append(n.args, "--notify-keyspace-events", "Ex$")
		}
	})
	cls := c.clients()
	us, eu, ap := cls[0], cls[1], cls[2]
	ctx := context.Background()

	subs := []*redis.PubSub{eu.Subscribe(ctx, "invalidate"), ap.Subscribe(ctx, "invalidate")}
	events := ap.PSubscribe(ctx, "__keyevent@0__:*")
	for _, s := range append(subs, events) {
		defer s.Close()
		if _, err := s.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const n = 50
	for i := range n {
		if err := us.Publish(ctx, "invalidate", fmt.Sprint("user:", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for r, s := range subs {
		ch := s.Channel()
		for i := range n {
			select {
			case m := <-ch:
				if want := fmt.Sprint("user:", i); m.Payload != want {
					t.Fatalf("%s: message %d is %q, want %q", e2eRegions[r+1], i, m.Payload, want)
				}
			case <-time.After(e2eHang):
				t.Fatalf("%s: %d of %d messages", e2eRegions[r+1], i, n)
			}
		}
	}

	if err := us.Set(ctx, "session", "x", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	ch := events.Channel()
	for _, want := range []string{"__keyevent@0__:set session", "__keyevent@0__:expired session"} {
		select {
		case m := <-ch:
			if got := m.Channel + " " + m.Payload; got != want {
				t.Fatalf("ap announced %q, want %q", got, want)
			}
		case <-time.After(e2eHang):
			t.Fatalf("ap did not announce %q", want)
		}
	}

	if _, err := eu.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "tx:a", "1", 0)
		p.Incr(ctx, "tx:n")
		p.Set(ctx, "tx:b", "1", 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*redis.Client{us, ap} {
		e2eEventually(t, e2eHang, "the transaction's writes everywhere", func() error {
			vals, err := cl.MGet(ctx, "tx:a", "tx:n", "tx:b").Result()
			if err == nil && fmt.Sprint(vals) != "[1 1 1]" {
				err = fmt.Errorf("%v", vals)
			}
			return err
		})
	}
}
