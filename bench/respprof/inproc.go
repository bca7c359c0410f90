package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/geocache/geocache"
	"github.com/geocache/geocache/internal/resp"
)

// inprocServer is a geocache origin inside respprof, configured as
// `geocache serve --max-memory <mm>MB` (plus --region, --node 1,
// --peer-addr and --peers with remote regions), so that Go's profiler sees
// it.
type inprocServer struct {
	node *geocache.Node
	srv  *resp.Server
	done chan error
}

func startInproc(respAddr, peerAddr, region string, peers []string, mm int) (*inprocServer, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ncfg := geocache.Config{
		Region: region, NodeID: 1, Peers: peers,
		MaxBytes: int64(mm) << 20, Logger: log,
	}
	if len(peers) == 0 {
		ncfg.Region = ""
	}
	if peerAddr != "" {
		ln, err := net.Listen("tcp", peerAddr)
		if err != nil {
			return nil, err
		}
		ncfg.Listener, ncfg.PeerAddr = ln, ln.Addr().String()
	}
	node, err := geocache.Open(ncfg)
	if err != nil {
		return nil, err
	}
	srv, err := resp.New(resp.Config{
		Node:            node,
		MaxRequestBytes: node.Config().MaxValueBytes + resp.RequestMargin,
		ProtectedMode:   true,
		Logger:          log,
	})
	if err != nil {
		node.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", respAddr)
	if err != nil {
		srv.Close()
		node.Close()
		return nil, err
	}
	s := &inprocServer{node: node, srv: srv, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ln) }()
	return s, nil
}

func (s *inprocServer) close() {
	s.srv.Close()
	<-s.done
	s.node.Close()
}

// pprofCase profiles one case of the in-process origin.
type pprofCase struct {
	prefix string
	cpu    *os.File
	before runtime.MemStats
}

func startPprof(prefix string) (*pprofCase, error) {
	p := &pprofCase{prefix: prefix}
	if err := writeHeap(prefix + ".allocs-before.pprof"); err != nil {
		return nil, err
	}
	f, err := os.Create(prefix + ".cpu.pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	p.cpu = f
	runtime.ReadMemStats(&p.before)
	return p, nil
}

// stop ends the case's profiles and returns its allocations and bytes
// allocated per request.
func (p *pprofCase) stop(requests float64) (allocs, bytes float64, err error) {
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	pprof.StopCPUProfile()
	if err := p.cpu.Close(); err != nil {
		return 0, 0, err
	}
	if err := writeHeap(p.prefix + ".allocs.pprof"); err != nil {
		return 0, 0, err
	}
	fmt.Printf("    profiles: %s.cpu.pprof; allocations of the case: go tool pprof -sample_index=alloc_space -base %s.allocs-before.pprof %s.allocs.pprof\n",
		p.prefix, p.prefix, p.prefix)
	return float64(after.Mallocs-p.before.Mallocs) / requests, float64(after.TotalAlloc-p.before.TotalAlloc) / requests, nil
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
