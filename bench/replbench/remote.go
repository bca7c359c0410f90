package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/geocache/geocache"
)

// The throughput and memory scenarios run the peers of node A (B, and C)
// in a child process ("remote"), so that the figures of A's process (heap,
// CPU) are A's own and the receiver's CPU can be read separately. The child
// is this binary with -remote; the parent drives it with one JSON request
// per line on its stdin and reads one JSON response per line on its stdout.

type nodeSpec struct {
	Name     string   `json:"name"`
	Region   string   `json:"region"`
	ID       uint32   `json:"id"`
	Peers    []string `json:"peers"`
	MaxBytes int64    `json:"max_bytes"`
	LogBytes int64    `json:"log_bytes"`
	MaxValue int      `json:"max_value,omitempty"` // Config.MaxValueBytes; 0: the default
	TLS      *tlsSpec `json:"tls,omitempty"`       // nil: plaintext links
}

type remoteReq struct {
	Op    string        `json:"op"` // listen, open, close, stats, watch, seen, quit
	Names []string      `json:"names,omitempty"`
	Keys  []string      `json:"keys,omitempty"` // watch: the keys to wait for, in order
	Wait  time.Duration `json:"wait,omitempty"` // seen: how long to wait for the last key
	Name  string        `json:"name,omitempty"`
	Node  *nodeSpec     `json:"node,omitempty"`
}

type remoteResp struct {
	Err   string            `json:"err,omitempty"`
	Addrs map[string]string `json:"addrs,omitempty"`
	Stats *geocache.Stats   `json:"stats,omitempty"`
	Proc  procStats         `json:"proc"`
	Seen  []int64           `json:"seen,omitempty"` // seen: when each watched key was first found (Unix ns; 0: never)
}

// watch is a reader of the child: readInOrder on one of its nodes, with
// the times on the wall clock (the parent's and the child's are the same
// clock: one machine).
type watch struct {
	seen []int64
	stop chan struct{}
	done chan struct{}
}

// serveRemote is the child's side.
func serveRemote() error {
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	enc := json.NewEncoder(os.Stdout)
	lns := map[string]net.Listener{}
	addrs := map[string]string{}
	nodes := map[string]*geocache.Node{}
	sigs := map[string]chan struct{}{}
	watches := map[string]*watch{}
	defer func() {
		for _, w := range watches {
			close(w.stop)
			<-w.done
		}
		for _, n := range nodes {
			n.Close()
		}
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for {
		var req remoteReq
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var resp remoteResp
		var err error
		switch req.Op {
		case "listen":
			resp.Addrs = map[string]string{}
			for _, name := range req.Names {
				var ln net.Listener
				if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					break
				}
				sigs[name] = make(chan struct{}, 1)
				lns[name], addrs[name] = sigListener{Listener: ln, sig: sigs[name]}, ln.Addr().String()
				resp.Addrs[name] = addrs[name]
			}
		case "open":
			s := req.Node
			ln := lns[s.Name]
			if ln == nil { // reopening a closed node: listen on the same address again
				for try := 0; try < 50; try++ {
					if ln, err = net.Listen("tcp", addrs[s.Name]); err == nil {
						ln = sigListener{Listener: ln, sig: sigs[s.Name]}
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if err != nil {
					break
				}
			}
			delete(lns, s.Name) // the node owns it now
			cfg := geocache.MultiRegion(s.Region, s.ID, addrs[s.Name], s.Peers...)
			cfg.NodeName, cfg.Listener = s.Name, ln
			cfg.MaxBytes, cfg.ReplicationLogBytes = s.MaxBytes, s.LogBytes
			if s.MaxValue > 0 {
				cfg.MaxValueBytes = s.MaxValue
			}
			if s.TLS != nil {
				cfg.TLS, err = s.TLS.config()
			}
			var n *geocache.Node
			if err == nil {
				if n, err = geocache.Open(cfg); err == nil {
					nodes[s.Name] = n
				}
			}
		case "close":
			if n := nodes[req.Name]; n != nil {
				err = n.Close()
				delete(nodes, req.Name)
			}
		case "stats":
			if n := nodes[req.Name]; n != nil {
				st := n.Stats()
				resp.Stats = &st
			} else {
				err = fmt.Errorf("no open node %q", req.Name)
			}
		case "watch":
			n := nodes[req.Name]
			if n == nil || watches[req.Name] != nil {
				err = fmt.Errorf("no open node %q, or one watch on it already", req.Name)
				break
			}
			w := &watch{seen: make([]int64, len(req.Keys)), stop: make(chan struct{}), done: make(chan struct{})}
			watches[req.Name] = w
			go func() {
				defer close(w.done)
				readInOrder(n, sigs[req.Name], req.Keys, w.seen, time.Unix(0, 0), w.stop)
			}()
		case "seen":
			w := watches[req.Name]
			if w == nil {
				err = fmt.Errorf("no watch on %q", req.Name)
				break
			}
			select {
			case <-w.done:
			case <-time.After(req.Wait):
				close(w.stop)
				<-w.done
			}
			delete(watches, req.Name)
			resp.Seen = w.seen
		case "quit":
			enc.Encode(remoteResp{Proc: readProc()})
			return nil
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			resp.Err = err.Error()
		}
		resp.Proc = readProc()
		if err := enc.Encode(resp); err != nil {
			return err
		}
	}
}

// remote is the parent's handle on the child.
type remote struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	in  io.WriteCloser
	enc *json.Encoder
	dec *json.Decoder
}

func startRemote() (*remote, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-remote")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &remote{cmd: cmd, in: in, enc: json.NewEncoder(in), dec: json.NewDecoder(bufio.NewReader(out))}, nil
}

func (r *remote) call(req remoteReq) (remoteResp, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var resp remoteResp
	if err := r.enc.Encode(req); err != nil {
		return resp, fmt.Errorf("remote %s: %w", req.Op, err)
	}
	if err := r.dec.Decode(&resp); err != nil {
		return resp, fmt.Errorf("remote %s: %w", req.Op, err)
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("remote %s: %s", req.Op, resp.Err)
	}
	return resp, nil
}

func (r *remote) listen(names ...string) (map[string]string, error) {
	resp, err := r.call(remoteReq{Op: "listen", Names: names})
	return resp.Addrs, err
}

func (r *remote) open(s nodeSpec) error {
	_, err := r.call(remoteReq{Op: "open", Node: &s})
	return err
}

func (r *remote) closeNode(name string) error {
	_, err := r.call(remoteReq{Op: "close", Name: name})
	return err
}

func (r *remote) stats(name string) (geocache.Stats, procStats, error) {
	resp, err := r.call(remoteReq{Op: "stats", Name: name})
	if err != nil {
		return geocache.Stats{}, resp.Proc, err
	}
	return *resp.Stats, resp.Proc, nil
}

// watch starts a reader on the child's node name that records when each
// of keys is first readable there.
func (r *remote) watch(name string, keys []string) error {
	_, err := r.call(remoteReq{Op: "watch", Name: name, Keys: keys})
	return err
}

// seen waits up to wait for the watch on name to find its last key and
// returns the times (Unix ns; 0: not found).
func (r *remote) seen(name string, wait time.Duration) ([]int64, error) {
	resp, err := r.call(remoteReq{Op: "seen", Name: name, Wait: wait})
	return resp.Seen, err
}

// quit stops the child and returns its final process figures.
func (r *remote) quit() procStats {
	resp, _ := r.call(remoteReq{Op: "quit"})
	r.in.Close()
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	return resp.Proc
}
