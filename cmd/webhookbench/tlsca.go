package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cert-ix/webhookd/delivery/deliverytest"
)

// authority is the receivers' private CA and the one leaf certificate (for loopback) every
// receiver serves. webhookd trusts the CA through WEBHOOKD_EXTRA_CA_FILE=PEMPath, so unlike
// a test's CA it lives in files, and --ca-dir keeps them across runs.
type authority struct {
	*deliverytest.Authority
	PEMPath string
	leaf    tls.Certificate
}

// loadOrCreateAuthority reuses ca.pem and ca.key in dir when both exist, so a webhookd
// started by hand (--target) can be given the same CA file across bench runs, and creates
// them otherwise. The leaf is made fresh each time.
func loadOrCreateAuthority(dir string) (*authority, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	ca, err := readAuthority(certPath, keyPath)
	if errors.Is(err, os.ErrNotExist) {
		ca, err = createAuthority(certPath, keyPath)
	}
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue()
	if err != nil {
		return nil, err
	}
	return &authority{Authority: ca, PEMPath: certPath, leaf: leaf}, nil
}

func readAuthority(certPath, keyPath string) (*deliverytest.Authority, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	ca, err := deliverytest.ParseAuthority(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", certPath, keyPath, err)
	}
	return ca, nil
}

func createAuthority(certPath, keyPath string) (*deliverytest.Authority, error) {
	ca, err := deliverytest.NewAuthority("webhookbench receiver CA")
	if err != nil {
		return nil, err
	}
	cb, kb, err := ca.PEM()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certPath, cb, 0o600); err != nil {
		return nil, err
	}
	return ca, os.WriteFile(keyPath, kb, 0o600)
}
