package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestSelfSignedWildcardServesHostRouting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	certFile, keyFile, err := SelfSignedWildcard(testDomain, dir)
	if err != nil {
		t.Fatalf("SelfSignedWildcard: %v", err)
	}
	w := newWorld(t, nil)
	w.addBox(idA, tokenA, StateRunning, "127.0.0.1", AgentPort)

	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("load pair: %v", err)
	}
	srv := httptest.NewUnstartedServer(w.proxy)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake below is expected
	srv.StartTLS()
	defer srv.Close()

	caPEM, err := os.ReadFile(CAFile(testDomain, dir))
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("CA file holds no certificate")
	}
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	client := hostDialer(srv.Listener.Addr().String(), base)
	defer client.CloseIdleConnections()

	req, err := http.NewRequest("GET", "https://49983-"+idA+"."+testDomain+"/v1/ready", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Access-Token", tokenA)
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	defer res.Body.Close()
	var s seen
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if res.StatusCode != http.StatusOK || s.Box != idA || s.XFProto != "https" {
		t.Errorf("status %d box %q X-Forwarded-Proto %q, want 200 from A with https", res.StatusCode, s.Box, s.XFProto)
	}

	// A cookie set over TLS is Secure.
	req, err = http.NewRequest("GET", "https://49983-"+idA+"."+testDomain+"/v1/ready?access_token="+tokenA, nil)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET with query token over TLS: %v", err)
	}
	res2.Body.Close()
	cookies := res2.Cookies()
	if len(cookies) != 1 || !cookies[0].Secure {
		t.Errorf("cookies over TLS = %+v, want one Secure cookie", cookies)
	}

	// Another domain is not covered.
	bad, err := http.NewRequest("GET", "https://49983-"+idA+".other.test/v1/ready", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := client.Do(bad); err == nil {
		res.Body.Close()
		t.Errorf("TLS to another domain succeeded, want a certificate error")
	}
}

func TestSelfSignedWildcardReuse(t *testing.T) {
	dir := t.TempDir()
	cert1, key1, err := SelfSignedWildcard(testDomain, dir)
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return b
	}
	ca1, c1, k1 := read(CAFile(testDomain, dir)), read(cert1), read(key1)

	cert2, key2, err := SelfSignedWildcard(testDomain, dir)
	if err != nil {
		t.Fatalf("second: %v", err)
	}
	if cert2 != cert1 || key2 != key1 {
		t.Errorf("files moved: %s %s then %s %s", cert1, key1, cert2, key2)
	}
	if !bytes.Equal(read(CAFile(testDomain, dir)), ca1) || !bytes.Equal(read(cert2), c1) || !bytes.Equal(read(key2), k1) {
		t.Errorf("valid files were made again, want them reused")
	}
	if fi, err := os.Stat(key1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	// A broken certificate is made again under the same CA.
	if err := os.WriteFile(cert1, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SelfSignedWildcard(testDomain, dir); err != nil {
		t.Fatalf("third: %v", err)
	}
	if !bytes.Equal(read(CAFile(testDomain, dir)), ca1) {
		t.Errorf("CA changed when only the certificate was broken")
	}
	if _, err := tls.LoadX509KeyPair(cert1, key1); err != nil {
		t.Errorf("remade pair does not load: %v", err)
	}

	// Another domain in the same directory gets its own CA.
	if _, _, err := SelfSignedWildcard("other.test", dir); err != nil {
		t.Fatalf("other domain: %v", err)
	}
	if !bytes.Equal(read(CAFile(testDomain, dir)), ca1) {
		t.Errorf("CA of %s changed when making one for other.test", testDomain)
	}
}

func TestSelfSignedWildcardRejectsBadDomain(t *testing.T) {
	for _, d := range []string{"", "localhost", "*.x.test", "1.2.3.4", "a b.test"} {
		if _, _, err := SelfSignedWildcard(d, t.TempDir()); !errors.Is(err, desktop.ErrInvalid) {
			t.Errorf("SelfSignedWildcard(%q) = %v, want desktop.ErrInvalid", d, err)
		}
	}
}
