// Package pubsub is the subscription hub of Redis's pub/sub: which
// subscribers listen to which channels and to which patterns, and the
// delivery of a published message to them.
//
// A Hub knows nothing of connections or of the wire: a Subscriber is
// anything that can take a message without blocking (the RESP server's
// connections queue it for their writer). The hub does not remember what
// each subscriber subscribed to; the subscriber does, and unsubscribes
// from everything before it goes away.
//
// Publishing to a channel nobody listens to costs one map lookup under a
// read lock when there are no pattern subscriptions, and a walk over the
// distinct patterns when there are (as in Redis). Subscribing and
// unsubscribing take the write lock and cost O(1).
//
// Subscribe and PSubscribe run an optional function with the hub still
// locked, after the subscription is made: what it records (a
// confirmation) comes after the subscription exists and before any of its
// messages.
//
// Lock order: Hub.mu, then whatever lock a Subscriber's methods (and those
// functions) take. Neither may call the Hub.
package pubsub
