package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// The local development CA: made once in the per-user directory (WEBHOOKD_HOME) by whichever
// of `serve` (on the embedded default) and `listen` runs first, trusted by that serve for
// endpoint TLS, and signing the certificate `listen` presents. Each set of files is written
// into a fresh directory that is then renamed into place, so two processes starting at once
// never see half a CA: the second rename fails and that process uses the first one's files.

const (
	caDirName     = "ca"
	listenDirName = "listen"
	certFile      = "cert.pem"
	keyFile       = "key.pem"
)

// localCA is the CA's certificate and key, and the path of its certificate file.
type localCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	path    string
}

// loadOrMakeCA returns the CA in home, making it first if there is none.
func loadOrMakeCA(home string) (*localCA, error) {
	dir := filepath.Join(home, caDirName)
	if ca, err := loadCA(dir); err == nil {
		return ca, nil
	}
	err := placeOnce(home, caDirName, func(tmp string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := certTemplate("webhookd local development CA", 10*365*24*time.Hour)
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return err
		}
		return writeKeyPair(tmp, der, key)
	})
	if err != nil {
		return nil, fmt.Errorf("local CA in %s: %w", dir, err)
	}
	return loadCA(dir)
}

// listenCertificate returns the certificate listen presents for 127.0.0.1, ::1 and localhost,
// signed by ca; it is made once and made again only when it is no longer valid for a month
// or another CA signed it.
func listenCertificate(home string, ca *localCA) (tls.Certificate, error) {
	dir := filepath.Join(home, listenDirName)
	if c, err := readListenCert(dir, ca); err == nil {
		return c, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return tls.Certificate{}, err
	}
	err := placeOnce(home, listenDirName, func(tmp string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := certTemplate("webhookd listen", 2*365*24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
		if err != nil {
			return err
		}
		return writeKeyPair(tmp, der, key)
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("listen certificate in %s: %w", dir, err)
	}
	return readListenCert(dir, ca)
}

func certTemplate(name string, valid time.Duration) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	now := time.Now()
	return &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name, Organization: []string{"webhookd"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(valid)}
}

// placeOnce fills a fresh directory with fill and renames it to home/name; when another
// process placed that directory first, its files stand and this one's are dropped.
func placeOnce(home, name string, fill func(dir string) error) error {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(home, "."+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := fill(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(home, name)); err != nil {
		if _, serr := os.Stat(filepath.Join(home, name, certFile)); serr == nil {
			return nil // placed by another process
		}
		return err
	}
	return nil
}

func writeKeyPair(dir string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func loadCA(dir string) (*localCA, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !pair.Leaf.IsCA {
		return nil, errors.New("not a CA made by webhookd")
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, certFile))
	if err != nil {
		return nil, err
	}
	return &localCA{cert: pair.Leaf, key: key, certPEM: certPEM, path: filepath.Join(dir, certFile)}, nil
}

func readListenCert(dir string, ca *localCA) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return pair, err
	}
	if err := pair.Leaf.CheckSignatureFrom(ca.cert); err != nil {
		return pair, err
	}
	if time.Now().Add(30 * 24 * time.Hour).After(pair.Leaf.NotAfter) {
		return pair, errors.New("expires within a month")
	}
	return pair, nil
}
