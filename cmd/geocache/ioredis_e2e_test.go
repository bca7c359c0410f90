package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ioredisScript drives ioredis's Cluster client against the region: it
// writes and reads keys, a multi-key command on a hash tag, then writes
// without pause, printing "writing" once it has, until it reads a line on
// its standard input; it ends with one JSON line of what it saw.
const ioredisScript = `
const Redis = require(process.env.IOREDIS_DIR + '/ioredis');
const seeds = JSON.parse(process.argv[2]);
const cluster = new Redis.Cluster(seeds, { maxRedirections: 16 });
let stop = false;
process.stdin.on('data', () => { stop = true; });
(async () => {
  for (let i = 0; i < 200; i++) await cluster.set('key:' + i, String(i));
  for (let i = 0; i < 200; i++) {
    const v = await cluster.get('key:' + i);
    if (v !== String(i)) throw new Error('key:' + i + ' = ' + v);
  }
  await cluster.mset('{user1}.a', '1', '{user1}.b', '2');
  const mget = await cluster.mget('{user1}.a', '{user1}.b');
  const masters = cluster.nodes('master').map(n => n.options.host + ':' + n.options.port).sort();
  let written = 0, failed = 0, firstError = '';
  console.log('writing');
  for (let i = 0; !stop || i % 100 !== 0; i++) {
    try {
      await cluster.set('late:' + i, String(i));
      written++;
    } catch (e) {
      failed++;
      if (!firstError) firstError = String(e);
    }
  }
  console.log(JSON.stringify({ masters, mget, written, failed, firstError }));
  cluster.disconnect();
  process.exit(0);
})().catch(e => { console.error(String(e)); process.exit(1); });
`

// ioredis's Cluster client (IOREDIS_DIR names a node_modules directory
// holding ioredis; node on PATH) against a region of three geocache serve
// processes with --cluster-redirect: it reads the map with CLUSTER SLOTS,
// routes every key to its slot's primary on all three nodes, keeps a hash
// tag's keys together, and writes through a node's SIGTERM without a
// failure (the leaving node redirects; ioredis would also reconnect and
// refresh its map by itself when the connection closes: without
// --cluster-redirect it loses no write either).
//
//	mkdir -p /tmp/ioredis && (cd /tmp/ioredis && npm install ioredis@5)
//	IOREDIS_DIR=/tmp/ioredis/node_modules go test -run IORedis ./cmd/geocache
//
// ioredisRegion starts a region of three nodes with flag and returns them
// and the command that runs script with node and ioredis (IOREDIS_DIR) on
// its arguments; it skips the test without ioredis or node.
func ioredisRegion(t *testing.T, flag, script string) ([]*e2eNode, func(args ...string) *exec.Cmd) {
	dir := os.Getenv("IOREDIS_DIR")
	if dir == "" {
		t.Skip("IOREDIS_DIR not set (a node_modules directory with ioredis)")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH")
	}
	nodes := e2eRegion(t, e2eFreeAddrs(t, 9), func(int) []string { return []string{flag} })
	path := filepath.Join(t.TempDir(), "client.js")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return nodes, func(args ...string) *exec.Cmd {
		cmd := exec.Command(nodeBin, append([]string{path}, args...)...)
		cmd.Env = append(os.Environ(), "IOREDIS_DIR="+dir)
		return cmd
	}
}

func TestIORedisClusterThroughAGracefulStop(t *testing.T) {
	nodes, command := ioredisRegion(t, "--cluster-redirect", ioredisScript)
	host, port, _ := strings.Cut(nodes[0].addr, ":")
	seeds := fmt.Sprintf(`[{"host":%q,"port":%s}]`, host, port)
	cmd := command(seeds)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "writing" {
		cmd.Wait()
		t.Fatalf("ioredis: %q; stderr:\n%s", lines.Text(), stderr.String())
	}

	nodes[1].signal(syscall.SIGTERM)
	if code := nodes[1].waitExit(e2eHang); code != 0 {
		t.Fatalf("%s exited with %d", nodes[1].name, code)
	}
	fmt.Fprintln(stdin)
	if !lines.Scan() {
		cmd.Wait()
		t.Fatalf("ioredis ended without its result; stderr:\n%s", stderr.String())
	}
	var got struct {
		Masters    []string
		MGet       []string `json:"mget"`
		Written    int
		Failed     int
		FirstError string
	}
	if err := json.Unmarshal(lines.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ioredis: %v\n%s", err, stderr.String())
	}
	want := []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}
	for _, a := range want {
		if !strings.Contains(strings.Join(got.Masters, ","), a) {
			t.Errorf("ioredis's masters %v lack %s", got.Masters, a)
		}
	}
	if strings.Join(got.MGet, ",") != "1,2" {
		t.Errorf("MGET of a hash tag's keys: %v", got.MGet)
	}
	if got.Failed > 0 {
		t.Errorf("%d of %d writes failed while a node handed its slots over; first: %s", got.Failed, got.Failed+got.Written, got.FirstError)
	}
	t.Logf("ioredis: masters %v, %d writes through the stop, %d failed", got.Masters, got.Written, got.Failed)
}

// ioredisPlainScript drives a plain (not cluster-aware) ioredis client
// against one node: keys of every node's slots, a pipeline, and MSET,
// MGET and DEL over several slots; one JSON line of what it saw.
const ioredisPlainScript = `
const Redis = require(process.env.IOREDIS_DIR + '/ioredis');
const [host, port] = process.argv[2].split(':');
const r = new Redis({ host, port: Number(port) });
(async () => {
  for (let i = 0; i < 300; i++) await r.set('plain:' + i, String(i));
  let wrong = 0;
  for (let i = 0; i < 300; i++) if ((await r.get('plain:' + i)) !== String(i)) wrong++;
  const p = r.pipeline();
  for (let i = 0; i < 300; i++) p.get('plain:' + i);
  const piped = (await p.exec()).filter(([e, v], i) => e || v !== String(i)).length;
  await r.mset('m:a', '1', 'm:b', '2', 'm:c', '3', 'm:d', '4');
  const mget = await r.mget('m:a', 'm:b', 'none', 'm:c', 'm:d');
  const del = await r.del('m:a', 'm:b', 'none', 'm:c');
  console.log(JSON.stringify({ wrong, piped, mget, del }));
  r.disconnect();
  process.exit(0);
})().catch(e => { console.error(String(e)); process.exit(1); });
`

// A plain ioredis client (IOREDIS_DIR as above) on one node of a region
// of three with --cluster-forward, each node keeping only its own slots:
// every key reads back, pipelined or not, and MSET, MGET and DEL over
// keys of several nodes are split and merged.
func TestIORedisPlainClientThroughForwarding(t *testing.T) {
	nodes, command := ioredisRegion(t, "--cluster-forward", ioredisPlainScript)
	out, err := command(nodes[0].addr).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ioredis: %v\n%s", err, stderr)
	}
	var got struct {
		Wrong, Piped int
		MGet         []*string `json:"mget"`
		Del          int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	mget := make([]string, len(got.MGet))
	for i, v := range got.MGet {
		mget[i] = "nil"
		if v != nil {
			mget[i] = *v
		}
	}
	if got.Wrong != 0 || got.Piped != 0 || strings.Join(mget, ",") != "1,2,nil,3,4" || got.Del != 3 {
		t.Fatalf("ioredis through forwarding: %d wrong, %d wrong pipelined, MGET %v, DEL %d", got.Wrong, got.Piped, mget, got.Del)
	}
	info, err := e2eInfo(context.Background(), nodes[0].client(), "stats")
	if err != nil {
		t.Fatal(err)
	}
	if f := info["geocache_forwarded_commands"]; f == "" || f == "0" {
		t.Errorf("nothing forwarded: %q", f)
	}
}
