package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// ServingCertificate loads the configured certificate or, like the kubelet,
// generates a self-signed one as <pki>/kubelet.crt and .key and reuses it on
// later starts.
func ServingCertificate(certFile, keyFile, pkiDir, nodeName string) (tls.Certificate, error) {
	if certFile == "" && keyFile == "" {
		certFile, keyFile = filepath.Join(pkiDir, "kubelet.crt"), filepath.Join(pkiDir, "kubelet.key")
		if _, err := os.Stat(certFile); os.IsNotExist(err) {
			if err := os.MkdirAll(pkiDir, 0o700); err != nil {
				return tls.Certificate{}, fmt.Errorf("create pki dir: %w", err)
			}
			certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(nodeName, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("generate serving certificate: %w", err)
			}
			if err := certutil.WriteCert(certFile, certPEM); err != nil {
				return tls.Certificate{}, fmt.Errorf("write serving certificate: %w", err)
			}
			if err := keyutil.WriteKey(keyFile, keyPEM); err != nil {
				return tls.Certificate{}, fmt.Errorf("write serving key: %w", err)
			}
		}
	}
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, fmt.Errorf("--tls-cert-file and --tls-private-key-file must be given together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load serving certificate: %w", err)
	}
	return cert, nil
}

// Names of the node-local client credentials knode creates when no
// --client-ca-file is given, so an operator on the node (and `knode get`)
// can authenticate without handing out anonymous access.
const (
	LocalCACert     = "knode-client-ca.crt"
	LocalCAKey      = "knode-client-ca.key"
	LocalAdminCert  = "admin.crt"
	LocalAdminKey   = "admin.key"
	LocalAdminUser  = "knode-admin"
	LocalAdminGroup = "system:masters"
)

// EnsureLocalClientCA creates (once) a client CA and an admin client
// certificate signed by it under pkiDir, all root-only, and returns the CA
// file to trust.
func EnsureLocalClientCA(pkiDir string) (string, error) {
	caCertFile, caKeyFile := filepath.Join(pkiDir, LocalCACert), filepath.Join(pkiDir, LocalCAKey)
	adminCertFile, adminKeyFile := filepath.Join(pkiDir, LocalAdminCert), filepath.Join(pkiDir, LocalAdminKey)
	if _, err := os.Stat(adminCertFile); err == nil {
		return caCertFile, nil
	}
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return "", fmt.Errorf("create pki dir: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate CA key: %w", err)
	}
	caCert, err := certutil.NewSelfSignedCACert(certutil.Config{CommonName: "knode-client-ca"}, caKey)
	if err != nil {
		return "", fmt.Errorf("create client CA: %w", err)
	}
	adminKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate admin key: %w", err)
	}
	adminDER, err := signClientCert(caCert, caKey, adminKey.Public(), LocalAdminUser, []string{LocalAdminGroup})
	if err != nil {
		return "", err
	}
	files := []struct {
		path string
		pem  func() ([]byte, error)
	}{
		{caCertFile, func() ([]byte, error) { return pemBlock("CERTIFICATE", caCert.Raw), nil }},
		{caKeyFile, func() ([]byte, error) { return keyutil.MarshalPrivateKeyToPEM(caKey) }},
		{adminKeyFile, func() ([]byte, error) { return keyutil.MarshalPrivateKeyToPEM(adminKey) }},
		{adminCertFile, func() ([]byte, error) { return pemBlock("CERTIFICATE", adminDER), nil }},
	}
	for _, f := range files {
		data, err := f.pem()
		if err != nil {
			return "", fmt.Errorf("encode %s: %w", f.path, err)
		}
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return caCertFile, nil
}

// signClientCert issues a client certificate: CN is the user, O the groups.
func signClientCert(ca *x509.Certificate, caKey crypto.Signer, pub crypto.PublicKey, cn string, groups []string) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign client certificate: %w", err)
	}
	return der, nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}
