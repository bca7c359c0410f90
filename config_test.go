package geocache

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/geocache/geocache/internal/testkit"
)

// Every rule of Config is reported as a *ConfigError naming the field,
// by Validate and by Open alike, and wraps ErrInvalidConfig.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
		msg   string
	}{
		{"negative bytes", Config{MaxBytes: -1}, "MaxBytes", "MaxBytes must not be negative"},
		{"negative entries", Config{MaxEntries: -1}, "MaxEntries", "must not be negative"},
		{"negative value bytes", Config{MaxValueBytes: -1}, "MaxValueBytes", "must not be negative"},
		{"negative tombstones", Config{MaxTombstones: -1}, "MaxTombstones", "must not be negative"},
		{"negative log", Config{ReplicationLogBytes: -1}, "ReplicationLogBytes", "must not be negative"},
		{"negative ttl", Config{DefaultTTL: -time.Second}, "DefaultTTL", "DefaultTTL must not be negative"},
		{"negative offset", Config{MaxClockOffset: -1}, "MaxClockOffset", "must not be negative"},
		{"negative horizon", Config{TombstoneHorizon: -1}, "TombstoneHorizon", "must not be negative"},
		{"negative peer timeout", Config{PeerTimeout: -1}, "PeerTimeout", "must not be negative"},
		{"negative sync timeout", Config{SyncTimeout: -1}, "SyncTimeout", "must not be negative"},
		{"value over Redis's largest", Config{MaxValueBytes: MaxValueBytesLimit + 1}, "MaxValueBytes", "MaxValueBytes 536870913 exceeds 512MiB"},
		{"window below a part", Config{LargeValueWindow: 64 << 10}, "LargeValueWindow", "is outside 256KiB to 256MiB"},
		{"window over the bound", Config{LargeValueWindow: 1 << 30}, "LargeValueWindow", "is outside 256KiB to 256MiB"},
		{"negative window", Config{LargeValueWindow: -1}, "LargeValueWindow", "must not be negative"},
		{"too many tombstones", Config{MaxTombstones: MaxTombstonesLimit + 1}, "MaxTombstones", "exceeds 2147483646"},
		{"offset of broken clocks", Config{MaxClockOffset: 2 * time.Minute}, "MaxClockOffset", "MaxClockOffset 2m0s exceeds 1m0s"},
		{"peer timeout too short", Config{PeerTimeout: 10 * time.Millisecond}, "PeerTimeout", "is below 40ms"},
		{"node id with peers", Config{Peers: []string{"a:1"}}, "NodeID", "is required with Peers"},
		{"anti-entropy past half the horizon", Config{TombstoneHorizon: time.Minute, AntiEntropyInterval: 31 * time.Second},
			"AntiEntropyInterval", "AntiEntropyInterval 31s is more than half the TombstoneHorizon 1m0s"},
		{"empty peer", Config{NodeID: 1, Peers: []string{""}}, "Peers", "has an empty address"},
		{"peer is self", Config{NodeID: 1, PeerAddr: "a:1", Peers: []string{"a:1"}}, "Peers", `Peers a:1 is this node's own PeerAddr`},
		{"peer twice", Config{NodeID: 1, Peers: []string{"a:1", "b:2", "a:1"}}, "Peers", "Peers a:1 is listed twice"},
		{"unknown keyspace event class", Config{KeyspaceEvents: "KEq"}, "KeyspaceEvents", `KeyspaceEvents "KEq" has a character not in "Ag$lshzxeKEtmdn"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, err := range []error{tt.cfg.Validate(), openErr(tt.cfg)} {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Field != tt.field || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("error %v (%#v); want a ConfigError of %s containing %q", err, ce, tt.field, tt.msg)
				}
			}
		})
	}
}

func openErr(cfg Config) error {
	n, err := Open(cfg)
	if err == nil {
		n.Close()
	}
	return err
}

// A negative AntiEntropyInterval is valid: it turns the periodic rounds off.
func TestConfigValid(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{AntiEntropyInterval: -1},
		{MaxValueBytes: MaxValueBytesLimit, MaxTombstones: MaxTombstonesLimit, MaxClockOffset: MaxClockOffsetLimit, PeerTimeout: MinPeerTimeout},
		MultiRegion("eu", 2, "a:1", "b:2", "c:3"),
	} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", cfg, err)
		}
	}
}

// Node.Config returns every default filled in, Clock included (a RESP
// server or an admin page reads the node's time from it); Validate leaves
// the caller's Config as it was.
func TestConfigDefaults(t *testing.T) {
	var cfg Config
	if err := cfg.Validate(); err != nil || !reflect.DeepEqual(cfg, Config{}) {
		t.Fatalf("Validate: %v, and it changed the Config to %+v", err, cfg)
	}
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	got := n.Config()
	if got.Clock == nil || got.Logger == nil || got.Codec == nil {
		t.Errorf("Clock %v, Logger %v, Codec %v: want them filled in", got.Clock, got.Logger, got.Codec)
	}
	got.Clock, got.Logger, got.Codec = nil, nil, nil
	want := Config{
		Cluster: "geocache", Region: "local", NodeID: 1, NodeName: "local-1",
		MaxBytes: DefaultMaxBytes, MaxValueBytes: DefaultMaxValueBytes,
		MaxClockOffset: DefaultMaxClockOffset, MaxTombstones: DefaultMaxTombstones,
		TombstoneHorizon: DefaultTombstoneHorizon, ReplicationLogBytes: DefaultReplicationLogBytes,
		LargeValueWindow: DefaultLargeValueWindow,
		SyncTimeout:      DefaultSyncTimeout, PeerTimeout: DefaultPeerTimeout,
		AntiEntropyInterval: 10 * time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Config()\n got %+v\nwant %+v", got, want)
	}
	if d := n.Config().Clock.UnixNano() - time.Now().UnixNano(); d < -int64(time.Second) || d > int64(time.Second) {
		t.Errorf("the default clock is %v from time.Now", time.Duration(d))
	}
}

// The policy the RESP server asks the node for: the default expiry of a
// write, the size limits, and whether a key exists.
func TestNodePolicy(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	n, err := Open(Config{Clock: clock, DefaultTTL: time.Minute, MaxValueBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()

	if got, want := n.DefaultExpireAt(), clock.Now().Add(time.Minute); !got.Equal(want) {
		t.Errorf("DefaultExpireAt = %v, want %v", got, want)
	}
	n.Set(ctx, "k", []byte("v"))
	if it, _ := n.Lookup("k"); !it.ExpireAt.Equal(n.DefaultExpireAt()) {
		t.Errorf("Set expires at %v, DefaultExpireAt says %v", it.ExpireAt, n.DefaultExpireAt())
	}
	plain, err := Open(Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got := plain.DefaultExpireAt(); !got.IsZero() {
		t.Errorf("DefaultExpireAt without DefaultTTL = %v, want the zero time", got)
	}

	for _, tt := range []struct {
		key, value int64
		ok         bool
	}{{MaxKeyBytes, 1000, true}, {MaxKeyBytes + 1, 0, false}, {0, 1001, false}, {1, 1 << 40, false}} {
		err := n.CheckSize(int(tt.key), tt.value)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrTooLarge)) {
			t.Errorf("CheckSize(%d, %d) = %v", tt.key, tt.value, err)
		}
		// Set agrees with CheckSize.
		setErr := n.Set(ctx, strings.Repeat("k", int(tt.key)), make([]byte, min(tt.value, 2000)))
		if tt.value <= 2000 && (setErr == nil) != tt.ok {
			t.Errorf("Set of a %d-byte key and %d-byte value: %v; CheckSize said %v", tt.key, tt.value, setErr, err)
		}
	}
	if err := n.CheckSize(2, 1001); err == nil || !strings.Contains(err.Error(), "key of 2 bytes, value of 1001 (limits 65536, 1000)") {
		t.Errorf("CheckSize error %q", err)
	}

	if !n.Contains("k") || n.Contains("absent") {
		t.Errorf("Contains(k) = %v, Contains(absent) = %v", n.Contains("k"), n.Contains("absent"))
	}
	clock.Advance(time.Minute)
	if n.Contains("k") {
		t.Error("Contains reports an expired key")
	}
	if _, err := n.TTL("k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("TTL of an expired key: %v", err)
	}
}

// The replication log holds four of the largest values by default: one
// large write must not push the writes queued before it out of the log.
func TestReplicationLogFollowsMaxValue(t *testing.T) {
	for _, tc := range []struct {
		value int
		log   int64
	}{{1 << 20, DefaultReplicationLogBytes}, {64 << 20, 256 << 20}, {MaxValueBytesLimit, 4 * MaxValueBytesLimit}} {
		n, err := Open(Config{MaxBytes: 1 << 30, MaxValueBytes: tc.value})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Config().ReplicationLogBytes; got != tc.log {
			t.Errorf("MaxValueBytes %d: log of %d bytes, want %d", tc.value, got, tc.log)
		}
		n.Close()
	}
}
