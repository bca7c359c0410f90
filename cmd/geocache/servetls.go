package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

// tlsPollInterval is how often geocache serve checks whether its
// certificate files changed (their modification time or size).
const tlsPollInterval = 10 * time.Second

// validateTLS checks the TLS flags: the three files go together, and a
// node whose replication reaches beyond loopback has them, or --insecure.
func (c *serveConfig) validateTLS() error {
	set := 0
	for _, f := range []string{c.tlsCert, c.tlsKey, c.tlsCA} {
		if f != "" {
			set++
		}
	}
	switch {
	case set != 0 && set != 3:
		return fmt.Errorf("%w: --tls-cert, --tls-key and --tls-ca go together", errUsage)
	case set == 3 || c.insecure:
		return nil
	}
	addrs := append([]string{}, c.peers...)
	if c.peerAddr != "" {
		addrs = append(addrs, c.peerAddr)
	}
	for _, a := range addrs {
		if !isLoopback(a) {
			return fmt.Errorf("%w: replication address %s is beyond loopback, and links without TLS let anyone who reaches it read and write every key: "+
				"give every node --tls-cert, --tls-key and --tls-ca (create them with 'geocache cert ca --dir DIR', then "+
				"'geocache cert node --dir DIR --name NAME --host ADDRESS' for each node; see docs/security.md), "+
				"or pass --insecure on a network you trust", errUsage, a)
		}
	}
	return nil
}

// startTLS loads the node's certificate files and returns the TLS
// configuration of its replication links, kept current by a watcher of the
// files and by SIGHUP. stop ends both.
func startTLS(cfg serveConfig, log *slog.Logger) (_ *tls.Config, stop func(), err error) {
	r, err := certs.NewReloader(certs.Files{Cert: cfg.tlsCert, Key: cfg.tlsKey, CA: cfg.tlsCA}, log)
	if err != nil {
		return nil, nil, err
	}
	r.Watch(tlsPollInterval)
	stopHangup := onHangup(func() {
		log.Info("SIGHUP: reloading the TLS certificate")
		r.Reload() // logs its outcome
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopHangup()
			r.Close()
		})
	}
	return r.TLSConfig(), stop, nil
}

// ignoreHangup logs each SIGHUP of a node without TLS material, which has
// nothing to reload, instead of letting it end the process. stop ends it.
func ignoreHangup(log *slog.Logger) (stop func()) {
	return onHangup(func() { log.Info("SIGHUP: no TLS certificate to reload") })
}

// onHangup calls fn on each SIGHUP, in one goroutine, until stop, which
// waits for it.
func onHangup(fn func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hup:
				fn()
			case <-done:
				return
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(done)
			wg.Wait()
		})
	}
}
