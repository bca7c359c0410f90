package resp

import (
	"strings"
	"testing"
)

// BenchmarkExec runs GET and SET through the command path without the
// network (exec on a connection, as a batch of one read would): dispatch,
// the per-command bookkeeping (commandstats, latency, CLIENT LIST's last
// command) and the node.
func BenchmarkExec(b *testing.B) {
	for _, tc := range []struct {
		name string
		args [][]byte
	}{
		{"GET", argv("GET", "user:12345")},
		{"SET", argv("SET", "user:12345", strings.Repeat("v", 64))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, node := hotConn(b)
			node.NewSession().Set(bg, "user:12345", []byte(strings.Repeat("v", 64)))
			b.ReportAllocs()
			for b.Loop() {
				c.out = c.out[:0]
				c.exec(tc.args)
			}
		})
	}
}
