package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/envd"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// TestSignedFilesOnSharedHost checks that a signed /files URL on the
// server's own host, as E2B's SDK builds it on E2B_SANDBOX_URL, goes to
// the sandbox whose token signed it, and nowhere when none did.
func TestSignedFilesOnSharedHost(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 50 * time.Millisecond})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be, domain: "sandbox.test"})
	defer r.stop()
	e2bKey := api.E2BKey(r.key("alice"))
	type created struct {
		SandboxID       string `json:"sandboxID"`
		EnvdAccessToken string `json:"envdAccessToken"`
	}
	var boxes []created
	for range 2 {
		status, body := r.send("POST", "/v2/sandboxes", "", `{"templateID":"desktop"}`, "X-API-KEY", e2bKey)
		if status != http.StatusCreated {
			t.Fatalf("POST /v2/sandboxes = %d %s", status, body)
		}
		var c created
		if err := json.Unmarshal([]byte(body), &c); err != nil || c.EnvdAccessToken == "" {
			t.Fatalf("created %s: %v; want an envdAccessToken", body, err)
		}
		boxes = append(boxes, c)
	}
	a, b := boxes[0], boxes[1]
	exp := time.Now().Add(time.Minute)
	signed := func(path, op, user, token string, exp time.Time) string {
		q := url.Values{"path": {path}, "signature": {envd.Sign(path, op, user, token, exp)}}
		if user != "" {
			q.Set("username", user)
		}
		if !exp.IsZero() {
			q.Set("signature_expiration", strconv.FormatInt(exp.Unix(), 10))
		}
		return "/files?" + q.Encode()
	}
	tests := []struct {
		name, method, path string
		status             int
		bodyHas            string
	}{
		{"download for a", "GET", signed("/tmp/x", "read", "", a.EnvdAccessToken, time.Time{}), 200, "header " + a.SandboxID},
		{"download for b", "GET", signed("/tmp/x", "read", "", b.EnvdAccessToken, time.Time{}), 200, "header " + b.SandboxID},
		{"upload for a", "POST", signed("/tmp/x", "write", "", a.EnvdAccessToken, time.Time{}), 200, "header " + a.SandboxID},
		{"with user and expiry", "GET", signed("/tmp/x", "read", "root", b.EnvdAccessToken, exp), 200, "header " + b.SandboxID},
		{"read signature to upload", "POST", signed("/tmp/x", "read", "", a.EnvdAccessToken, time.Time{}), 401, `"code":401`},
		{"unknown token", "GET", signed("/tmp/x", "read", "", "not-a-token", time.Time{}), 401, "matches no running sandbox"},
		{"bad expiry", "GET", signed("/tmp/x", "read", "", a.EnvdAccessToken, time.Time{}) + "&signature_expiration=soon", 401, "unix time"},
		{"unsigned", "GET", "/files?path=%2Ftmp%2Fx", 401, "missing API key"},
		{"delete", "DELETE", signed("/tmp/x", "read", "", a.EnvdAccessToken, time.Time{}), 401, "missing API key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := r.send(tt.method, tt.path, "", "")
			if status != tt.status || !strings.Contains(body, tt.bodyHas) {
				t.Errorf("%s %s = %d %s; want %d with %s", tt.method, tt.path, status, body, tt.status, tt.bodyHas)
			}
		})
	}
	// A killed sandbox's signatures no longer route.
	if status, body := r.send("DELETE", "/sandboxes/"+a.SandboxID, "", "", "X-API-KEY", e2bKey); status != http.StatusNoContent {
		t.Fatalf("DELETE = %d %s", status, body)
	}
	path := signed("/tmp/x", "read", "", a.EnvdAccessToken, time.Time{})
	if status, body := r.send("GET", path, "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET %s after kill = %d %s, want 401", path, status, body)
	}
}
