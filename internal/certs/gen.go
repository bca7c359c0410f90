package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Lifetimes of the certificates Generate makes.
const (
	CALifetime   = 10 * 365 * 24 * time.Hour
	NodeLifetime = 365 * 24 * time.Hour
)

// backdate is how far before its creation a certificate becomes valid, so
// that a peer whose clock is a little behind accepts it at once.
const backdate = time.Hour

// File names in a certificate directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// NodeFiles returns the certificate and key file names of node name.
func NodeFiles(name string) (cert, key string) { return name + ".pem", name + "-key.pem" }

// ErrExists: a file that would be written exists, and force was not given.
var ErrExists = errors.New("certs: file exists (use --force to overwrite)")

// PEM is a certificate and its private key, PEM-encoded.
type PEM struct {
	Cert, Key []byte
}

// NewCA returns a self-signed CA certificate valid from now for
// CALifetime, with a fresh ECDSA P-256 key. It signs node certificates
// only (path length 0).
func NewCA(name string, now time.Time) (PEM, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	serial, err := serialNumber()
	if err != nil {
		return PEM{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"geocache"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEM{}, err
	}
	return encode(der, key)
}

// NewNode returns a node certificate for name signed by ca, valid from now
// for NodeLifetime, usable to serve and to dial (serverAuth and
// clientAuth). hosts are its subject alternative names: IP addresses and
// DNS names, the addresses its peers dial it by; at least one is needed.
func NewNode(ca PEM, name string, hosts []string, now time.Time) (PEM, error) {
	if name == "" {
		return PEM{}, errors.New("certs: a node certificate needs a name")
	}
	if len(hosts) == 0 {
		return PEM{}, errors.New("certs: a node certificate needs at least one host (the IP address or DNS name its peers dial)")
	}
	caCert, caKey, err := parsePair(ca)
	if err != nil {
		return PEM{}, fmt.Errorf("certs: the CA: %w", err)
	}
	if !caCert.IsCA {
		return PEM{}, errors.New("certs: the CA certificate is not a CA")
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{"geocache"}},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(NodeLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return PEM{}, errors.New("certs: empty host")
		case net.ParseIP(h) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
		case validDNSName(h):
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		default:
			return PEM{}, fmt.Errorf("certs: host %q is neither an IP address nor a DNS name", h)
		}
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	if tmpl.SerialNumber, err = serialNumber(); err != nil {
		return PEM{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return PEM{}, err
	}
	return encode(der, key)
}

// validDNSName reports whether h is a DNS name: labels of letters, digits
// and '-', separated by dots (a leading "*." for a wildcard).
func validDNSName(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEM{}, err
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}

// parsePair decodes a CA's certificate and key.
func parsePair(p PEM) (*x509.Certificate, any, error) {
	cb, _ := pem.Decode(p.Cert)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	kb, _ := pem.Decode(p.Key)
	if kb == nil {
		return nil, nil, errors.New("no PEM private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if k, e := x509.ParseECPrivateKey(kb.Bytes); e == nil {
			key = k
		} else {
			return nil, nil, err
		}
	}
	return cert, key, nil
}

// ReadPair reads a certificate and key from files.
func ReadPair(certFile, keyFile string) (PEM, error) {
	c, err := os.ReadFile(certFile)
	if err != nil {
		return PEM{}, err
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return PEM{}, err
	}
	return PEM{Cert: c, Key: k}, nil
}

// WritePair writes p to dir/certName (mode 0644) and dir/keyName (mode
// 0600), creating dir (0700) if needed. Unless force, it refuses, writing
// nothing, if either file exists (ErrExists).
func WritePair(dir, certName, keyName string, p PEM, force bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	if !force {
		for _, f := range []string{certPath, keyPath} {
			if _, err := os.Lstat(f); err == nil {
				return fmt.Errorf("%w: %s", ErrExists, f)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := writeFile(keyPath, p.Key, 0o600, force); err != nil {
		return err
	}
	if err := writeFile(certPath, p.Cert, 0o644, force); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// writeFile writes data to a temporary file in the same directory with
// mode perm, then renames it over path: a node polling path never reads a
// half-written file. Without force the rename refuses an existing path
// (checked just before; a race with another writer is not guarded).
func writeFile(path string, data []byte, perm os.FileMode, force bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !force {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
