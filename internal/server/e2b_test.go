package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
	"github.com/cubicle-dev/cubicle/internal/server"
)

// send sends a request with the headers given as name, value pairs and
// returns the status and body.
func (r *running) send(method, path, host, body string, headers ...string) (int, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestE2BFace(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 50 * time.Millisecond})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be, domain: "sandbox.test"})
	defer r.stop()
	key := r.key("alice")
	e2bKey := api.E2BKey(key)

	status, body := r.send("POST", "/v2/sandboxes", "", `{"templateID":"desktop","metadata":{"via":"e2b"}}`, "X-API-KEY", e2bKey)
	if status != http.StatusCreated {
		t.Fatalf("POST /v2/sandboxes = %d %s", status, body)
	}
	var created struct {
		SandboxID, Domain string
	}
	json.Unmarshal([]byte(body), &created)
	id := created.SandboxID
	if created.Domain != "sandbox.test" {
		t.Errorf("domain = %q, want the server's sandbox.test", created.Domain)
	}
	// One lifecycle, two faces.
	if s, status := r.get(key, id); status != http.StatusOK || s.Metadata["via"] != "e2b" {
		t.Errorf("GET /v1/sandboxes/%s = %d %+v, want the sandbox made through /v2", id, status, s)
	}
	unknown := strings.Repeat("q", 20)
	tests := []struct {
		name, method, path, host string
		headers                  []string
		status                   int
		bodyHas                  string
	}{
		{"e2b get", "GET", "/sandboxes/" + id, "", []string{"X-API-KEY", e2bKey}, 200, `"sandboxID":"` + id},
		{"e2b get native key", "GET", "/sandboxes/" + id, "", []string{"X-API-KEY", key}, 200, `"state":"running"`},
		{"e2b list", "GET", "/v2/sandboxes", "", []string{"X-API-KEY", e2bKey}, 200, id},
		{"e2b bad key", "GET", "/sandboxes/" + id, "", []string{"X-API-KEY", "e2b_" + strings.Repeat("1", 40)}, 401, `"code":401`},
		{"e2b unknown", "GET", "/sandboxes/" + unknown, "", []string{"X-API-KEY", e2bKey}, 404, `"code":404`},
		{"v1 with e2b key", "GET", "/v1/sandboxes/" + id, "", []string{"X-API-KEY", e2bKey}, 200, `"id":"` + id},
		{"server health", "GET", "/health", "", nil, 200, `"status":"ok"`},
		{"envd health", "GET", "/health", "", []string{"E2b-Sandbox-Id", id}, 200, "header " + id},
		{"envd health unknown", "GET", "/health", "", []string{"E2b-Sandbox-Id", unknown}, 502, `"code":502`},
		{"envd host unknown", "GET", "/health", "49983-" + unknown + ".sandbox.test", nil, 502, `"code":502`},
		{"envd host", "GET", "/health", "49983-" + id + ".sandbox.test", nil, 200, "host 49983-" + id},
		{"proxy path", "GET", "/sandboxes/" + id + "/agent/v1/ready", "", []string{"X-Access-Token", "wrong"}, 404, "no such sandbox"},
		{"unknown path", "GET", "/nope", "", []string{"X-API-KEY", key}, 404, `"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := r.send(tt.method, tt.path, tt.host, "", tt.headers...)
			if status != tt.status || !strings.Contains(body, tt.bodyHas) {
				t.Errorf("%s %s = %d %s; want %d with %s", tt.method, tt.path, status, body, tt.status, tt.bodyHas)
			}
		})
	}
	if status, body := r.send("DELETE", "/sandboxes/"+id, "", "", "X-API-KEY", e2bKey); status != http.StatusNoContent {
		t.Fatalf("DELETE /sandboxes/%s = %d %s", id, status, body)
	}
	if status, body := r.send("GET", "/health", "", "", "E2b-Sandbox-Id", id); status != http.StatusBadGateway {
		t.Errorf("envd health of a killed sandbox = %d %s, want 502", status, body)
	}
}

func TestMounts(t *testing.T) {
	view := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "view "+r.URL.Path) })
	base := server.Config{StateDir: t.TempDir(), Agent: "/usr/bin/cubicle", Logger: slog.New(slog.DiscardHandler)}

	cfg := base
	cfg.Mounts = []server.Mount{{Pattern: "/extra/", Handler: view}}
	srv, err := server.New(cfg, sandboxtest.NewBackend(sandboxtest.Options{}), templates)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for path, want := range map[string]string{"/extra/x": "view /extra/x", "/elsewhere": `"unauthorized"`, "/health": `"ok"`} {
		rec := &recorder{header: http.Header{}}
		srv.ServeHTTP(rec, mustRequest(t, path))
		if !strings.Contains(rec.body.String(), want) {
			t.Errorf("GET %s = %d %s, want %s", path, rec.status, rec.body.String(), want)
		}
	}

	for name, mounts := range map[string][]server.Mount{
		"conflict":   {{Pattern: "/v1/", Handler: view}},
		"no handler": {{Pattern: "/x/"}},
		"bad":        {{Pattern: "GET", Handler: view}},
	} {
		cfg := base
		cfg.StateDir = t.TempDir()
		cfg.Mounts = mounts
		if srv, err := server.New(cfg, sandboxtest.NewBackend(sandboxtest.Options{}), templates); err == nil {
			srv.Close()
			t.Errorf("%s: New with mounts %v succeeded", name, mounts)
		}
	}
}

func mustRequest(t *testing.T, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", "http://127.0.0.1"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) { r.status = code }
