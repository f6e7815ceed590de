package proxy

import (
	"bytes"
	"crypto"
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
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity of the certificates SelfSignedWildcard makes, and how long before
// the end they are made again.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 397 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// CAFile is the CA certificate that SelfSignedWildcard keeps in dir for
// domain; clients must trust it.
func CAFile(domain, dir string) string {
	return filepath.Join(dir, normDomain(domain)+"-ca.crt")
}

// SelfSignedWildcard makes, in dir, a local CA for domain and a certificate
// it signs for *.<domain> and <domain>, and returns the certificate and key
// files for a TLS listener. It is for local testing and private set-ups: a
// public server wants a certificate from a public CA.
//
// Files that are present and still valid for 30 days more are reused, so
// the CA stays the same across restarts and has to be trusted once. The CA
// is name-constrained to domain: even if its key leaks, it cannot vouch for
// any other name. Keys are written with mode 0600.
//
// To trust the CA (path from CAFile):
//
//   - Node.js (the E2B SDK): NODE_EXTRA_CA_CERTS=<ca file>
//   - Go, curl, Python and most tools on Debian: copy it to
//     /usr/local/share/ca-certificates/<name>.crt and run
//     update-ca-certificates (or curl --cacert <ca file>)
//   - Chromium: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n cubicle -i <ca file>
//   - Firefox: Settings > Privacy & Security > Certificates > Import, or the
//     policy Certificates.Install
//
// Clients must also resolve *.<domain> to the server (a wildcard DNS record
// or a local resolver; /etc/hosts takes no wildcards).
func SelfSignedWildcard(domain, dir string) (certFile, keyFile string, err error) {
	if err := validDomain(domain); err != nil {
		return "", "", fmt.Errorf("proxy: self-signed certificate: %w", err)
	}
	domain = normDomain(domain)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("proxy: self-signed certificate: %w", err)
	}
	caCertFile := CAFile(domain, dir)
	caKeyFile := strings.TrimSuffix(caCertFile, ".crt") + ".key"
	certFile = filepath.Join(dir, domain+".crt")
	keyFile = filepath.Join(dir, domain+".key")
	renewAt := time.Now().Add(renewBefore)

	ca, caKey, err := loadPair(caCertFile, caKeyFile)
	if err != nil || !ca.IsCA || renewAt.After(ca.NotAfter) {
		if ca, caKey, err = makeCA(domain, caCertFile, caKeyFile); err != nil {
			return "", "", fmt.Errorf("proxy: self-signed certificate: %w", err)
		}
	}
	if leafValid(certFile, keyFile, ca, domain, renewAt) {
		return certFile, keyFile, nil
	}
	if err := makeLeaf(domain, ca, caKey, certFile, keyFile); err != nil {
		return "", "", fmt.Errorf("proxy: self-signed certificate: %w", err)
	}
	return certFile, keyFile, nil
}

func normDomain(d string) string { return strings.TrimSuffix(strings.ToLower(d), ".") }

// loadPair reads a certificate and its key and checks that they belong
// together.
func loadPair(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || pair.Leaf == nil {
		return nil, nil, errors.New("unusable key pair")
	}
	return pair.Leaf, signer, nil
}

// leafValid reports whether the certificate in certFile, with its key, is
// signed by ca for *.<domain> and <domain> and still valid at renewAt.
func leafValid(certFile, keyFile string, ca *x509.Certificate, domain string, renewAt time.Time) bool {
	leaf, _, err := loadPair(certFile, keyFile)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{domain, strings.Repeat("a", IDLen) + "." + domain} {
		opts := x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: renewAt}
		if _, err := leaf.Verify(opts); err != nil {
			return false
		}
	}
	return true
}

func makeCA(domain, certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:                     pkix.Name{CommonName: "Cubicle local CA for " + domain},
		NotBefore:                   now.Add(-time.Hour),
		NotAfter:                    now.Add(caValidity),
		IsCA:                        true,
		BasicConstraintsValid:       true,
		MaxPathLenZero:              true,
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{domain},
	}
	der, err := sign(tmpl, tmpl, key, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make CA: %w", err)
	}
	if err := writePair(certFile, keyFile, der, key); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func makeLeaf(domain string, ca *x509.Certificate, caKey crypto.Signer, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "*." + domain},
		DNSNames:    []string{"*." + domain, domain},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(leafValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := sign(tmpl, ca, key, caKey)
	if err != nil {
		return fmt.Errorf("make certificate: %w", err)
	}
	return writePair(certFile, keyFile, der, key)
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
}

// writePair writes the key first and the certificate last, each by rename,
// so that a reader never sees half a file.
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return writeFileAtomic(certFile, certPEM, 0o644)
}

func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if _, err := bytes.NewReader(data).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
