package geocache

import (
	"context"
	"encoding/json"
	"fmt"
)

// Codec turns Go values into bytes and back for SetValue and GetValue:
// values are opaque bytes to the cache, so any schema works.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json.
type JSON struct{}

// Marshal encodes v as JSON.
func (JSON) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON data into v.
func (JSON) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// SetValue encodes v with the node's Codec and stores it under key, with
// Set's options and errors.
func SetValue[T any](ctx context.Context, n *Node, key string, v T, opts ...Option) error {
	b, err := n.cfg.Codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("geocache: encode value of %q: %w", key, err)
	}
	return n.Set(ctx, key, b, opts...)
}

// GetValue reads key and decodes it with the node's Codec into a T. It
// returns ErrNotFound, or the decoding error.
func GetValue[T any](n *Node, key string) (T, error) {
	var v T
	b, err := n.Get(key)
	if err != nil {
		return v, err
	}
	if err := n.cfg.Codec.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("geocache: decode value of %q: %w", key, err)
	}
	return v, nil
}
