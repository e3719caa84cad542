package controlplane

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// WriteCAKey writes the CA's private key next to its certificate and
// returns the file: kube-controller-manager signs certificate requests
// (--cluster-signing-key-file) with it, as a cluster's CA does.
func (p *PKI) WriteCAKey() (string, error) {
	der, err := x509.MarshalECPrivateKey(p.key)
	if err != nil {
		return "", fmt.Errorf("CA key: %w", err)
	}
	path := filepath.Join(p.dir, "ca.key")
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
