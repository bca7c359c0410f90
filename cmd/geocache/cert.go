package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/geocache/geocache/internal/certs"
)

const certUsage = `usage: geocache cert ca   --dir DIR [--force]
       geocache cert node --dir DIR --name NAME --host HOST[,HOST...] [--force]
       geocache cert gossip-key --dir DIR [--force]

Creates the certificates of a cluster's mutual TLS (docs/security.md):

  ca    a development CA: DIR/ca.pem and DIR/ca-key.pem (ECDSA P-256, 10 years).
        Keep ca-key.pem off the nodes.
  node  a node certificate signed by the CA in DIR: DIR/NAME.pem and
        DIR/NAME-key.pem (1 year), to serve and to dial replication links.
        --host lists the IP addresses and DNS names its peers dial it by.
  gossip-key  a random 32-byte key for the gossip of a region of several
        nodes: DIR/gossip.key (base64), for every node's --gossip-key.

Keys are written with mode 0600. Existing files are not overwritten unless
--force is given. Then run each node with
  --tls-cert DIR/NAME.pem --tls-key DIR/NAME-key.pem --tls-ca DIR/ca.pem
`

// certCmd runs geocache cert and returns the exit status.
func certCmd(args []string, stdout, stderr io.Writer) int {
	err := certRun(args, stdout, time.Now())
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, certUsage)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "geocache cert: %s\n\n%s", strings.TrimPrefix(err.Error(), errUsage.Error()+": "), certUsage)
		return 2
	}
	fmt.Fprintln(stderr, "geocache cert:", err)
	return 1
}

func certRun(args []string, stdout io.Writer, now time.Time) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: ca, node or gossip-key?", errUsage)
	}
	kind := args[0]
	if kind == "-h" || kind == "--help" || kind == "help" {
		return flag.ErrHelp
	}
	if kind != "ca" && kind != "node" && kind != "gossip-key" {
		return fmt.Errorf("%w: unknown kind %q (ca, node or gossip-key)", errUsage, kind)
	}
	fs := flag.NewFlagSet("geocache cert "+kind, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "directory of the CA and certificates")
	force := fs.Bool("force", false, "overwrite existing files")
	var name string
	var hosts []string
	if kind == "node" {
		fs.Var(nameValue{&name, false}, "name", "node name, e.g. us-east-1: the files are NAME.pem and NAME-key.pem")
		fs.Var((*listValue)(&hosts), "host", "comma-separated IP addresses and DNS names the node's peers dial it by")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %s", errUsage, doubleDash(err.Error()))
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case *dir == "":
		return fmt.Errorf("%w: --dir is required", errUsage)
	case kind == "node" && name == "":
		return fmt.Errorf("%w: --name is required", errUsage)
	case kind == "node" && len(hosts) == 0:
		return fmt.Errorf("%w: --host is required: the IP addresses or DNS names in the peers' --peers", errUsage)
	case kind == "node" && (name == "ca" || name == "ca-key"):
		return fmt.Errorf("%w: --name %q would overwrite the CA's files", errUsage, name)
	}
	if kind == "gossip-key" {
		path, err := writeGossipKey(*dir, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: give it to every node of the region (--gossip-key %s)\n", path, path)
		return nil
	}
	if kind == "ca" {
		p, err := certs.NewCA("geocache development CA", now)
		if err != nil {
			return err
		}
		if err := certs.WritePair(*dir, certs.CAFile, certs.CAKeyFile, p, *force); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s and %s (valid until %s)\n", filepath.Join(*dir, certs.CAFile),
			filepath.Join(*dir, certs.CAKeyFile), now.Add(certs.CALifetime).UTC().Format(time.DateOnly))
		return nil
	}
	ca, err := certs.ReadPair(filepath.Join(*dir, certs.CAFile), filepath.Join(*dir, certs.CAKeyFile))
	if err != nil {
		return fmt.Errorf("read the CA (create it with 'geocache cert ca --dir %s'): %w", *dir, err)
	}
	p, err := certs.NewNode(ca, name, hosts, now)
	if err != nil {
		return err
	}
	c, k := certs.NodeFiles(name)
	if err := certs.WritePair(*dir, c, k, p, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s for %s (valid until %s)\n", filepath.Join(*dir, c), filepath.Join(*dir, k),
		strings.Join(hosts, ","), now.Add(certs.NodeLifetime).UTC().Format(time.DateOnly))
	return nil
}

// gossipKeyFile is the name of the file geocache cert gossip-key writes.
const gossipKeyFile = "gossip.key"

// writeGossipKey writes a random 32-byte key, base64, to DIR/gossip.key
// with mode 0600; an existing file is kept unless force.
func writeGossipKey(dir string, force bool) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, gossipKeyFile)
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%s exists (--force overwrites it; every node of the region must then get the new key)", path)
		}
		return "", err
	}
	_, err = fmt.Fprintln(f, base64.StdEncoding.EncodeToString(key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return path, err
}
