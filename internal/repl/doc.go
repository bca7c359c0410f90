// Package repl holds geocache's replication machinery: the per-origin
// replication log today; streams, resume, full sync and acknowledgements as
// they are built (see docs/replication.md).
package repl
