package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for geocache when it is started
// as "<test binary> serve ...": the demo's region (demo_region.go) runs the
// binary the demo runs in, which in TestDemo is this one.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestDemo runs the tour and checks that its narration is consistent with
// what it printed it saw: eu-west alone keeps the item it read midway (the
// demo once printed that sentence under a table that said otherwise,
// because it did not wait for eu-west's write to reach the other regions
// before us-east filled them).
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"demo", "-latency", "5ms", "-ttl", "300ms", "-duration", "1ms", "-base-port", "0"}
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, errOut.String(), out.String())
	}
	got := out.String()
	for _, want := range []string{
		"visible after",
		"eu-west read item:0000 midway, so it kept it; the others evicted it",
		"gone", "holds 100 of 100", "acknowledged by a majority", "redis-cli -h 127.0.0.1 -p", "stopping",
		"page:views 30   profile:42 fields ap-south,eu-west,us-east", "every increment counts and every field survives",
		"asset:video (12 MiB, intact) after", "the small writes behind it went between them",
		"each node keeps only its slots", "kill -9 eu-central-2: the survivors' slot maps dropped it",
		"the survivors took its share", "eu-central-1 primary of", "serves 100 of 100 keys", "got its slots back",
		"the others forgot its share again",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
	for region, want := range map[string]string{"us-east": "evicted", "eu-west": "kept", "ap-south": "evicted"} {
		re := regexp.MustCompile(`(?m)^\s+` + region + `\s+entries\s+\d+\s+evicted\s+\d+\s+item:0000 (\w+)$`)
		m := re.FindStringSubmatch(got)
		if m == nil || m[1] != want {
			t.Errorf("demo output: %s's item:0000 line %q; want %s:\n%s", region, m, want, got)
		}
	}
	for _, never := range []string{"saw otherwise", "did not hold", "unlike the region"} {
		if strings.Contains(got, never) {
			t.Errorf("demo output reports %q:\n%s", never, got)
		}
	}
}

// TestHelpExitsZero: -h of the binary and of every command prints the
// usage on stdout and exits 0; a bad flag exits 2 with a hint on stderr.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "usage: geocache <command>"},
		{[]string{"--help"}, "usage: geocache <command>"},
		{[]string{"help"}, "usage: geocache <command>"},
		{[]string{"demo", "-h"}, "usage: geocache demo"},
		{[]string{"demo", "--help"}, "-base-port"},
		{[]string{"serve", "-h"}, "usage: geocache serve"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != 0 || !strings.Contains(out.String(), tc.want) || errOut.Len() != 0 {
			t.Errorf("geocache %s: exit %d, stdout %q, stderr %q; want 0 and %q on stdout", strings.Join(tc.args, " "),
				code, out.String(), errOut.String(), tc.want)
		}
	}
	for _, args := range [][]string{{"demo", "-bogus"}, {"demo", "extra"}, {"demo", "-ttl", "0s"}, {"demo", "-latency", "x"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "geocache demo -h") {
			t.Errorf("geocache %s: exit %d, stderr %q; want 2 and a hint", strings.Join(args, " "), code, errOut.String())
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", code, errOut.String())
	}
}
