package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// harness is the API over a manager on the fake backend, served over real
// HTTP; the fake agents answer on loopback addresses.
type harness struct {
	t    *testing.T
	srv  *httptest.Server
	be   *sandboxtest.Backend
	keys *KeyManager
	key  string // alice's key
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	be := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 100 * time.Millisecond})
	t.Cleanup(be.Close)
	st := sandboxtest.NewStore()
	m, err := sandbox.NewManager(sandbox.Config{Agent: "/usr/bin/cubicle", Logger: log, ReadyTimeout: time.Minute},
		be, st, sandboxtest.Templates{"desktop": "/templates/desktop"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	keys := NewKeyManager(st)
	key, err := keys.Create(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Logger: log, Defaults: sandbox.Limits{MemoryMB: 2048, Pids: 1024}}, m, keys)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, be: be, keys: keys, key: key, logs: logs}
}

// do sends a request with alice's key and returns the status and body.
func (h *harness) do(method, path, body string) (int, []byte) {
	h.t.Helper()
	return h.doKey(h.key, method, path, body)
}

func (h *harness) doKey(key, method, path, body string) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, b
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func decodeError(t *testing.T, b []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("body %q is not an error: %v", b, err)
	}
	return e
}

func (h *harness) createSandbox() apitype.Sandbox {
	h.t.Helper()
	status, body := h.do("POST", "/v1/sandboxes", `{"timeout_s": 600}`)
	if status != http.StatusCreated {
		h.t.Fatalf("create: %d %s", status, body)
	}
	var s apitype.Sandbox
	if err := json.Unmarshal(body, &s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	revoked, err := h.keys.Create(t.Context(), "carol")
	if err != nil {
		t.Fatal(err)
	}
	infos, _ := h.keys.List(t.Context())
	for _, k := range infos {
		if k.Owner == "carol" {
			if err := h.keys.Revoke(t.Context(), k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		header string
		value  string
		status int
	}{
		{"no key", "", "", 401},
		{"bearer", "Authorization", "Bearer " + h.key, 200},
		{"lower-case bearer", "Authorization", "bearer " + h.key, 200},
		{"x-api-key", "X-API-Key", h.key, 200},
		{"basic", "Authorization", "Basic " + h.key, 401},
		{"malformed", "Authorization", "Bearer cbk_123", 401},
		{"upper-case hex", "X-API-Key", strings.ToUpper(h.key), 401},
		{"unknown", "X-API-Key", "cbk_" + strings.Repeat("0", 40), 401},
		{"revoked", "X-API-Key", revoked, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.srv.URL+"/v1/sandboxes", nil)
			if tt.header != "" {
				req.Header.Set(tt.header, tt.value)
			}
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.status == 401 {
				if e := decodeError(t, body); e.Error.Code != "unauthorized" {
					t.Errorf("code %q, want unauthorized", e.Error.Code)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if strings.Contains(string(body), tt.value) && tt.value != "" {
					t.Errorf("the error echoes the key: %s", body)
				}
			}
		})
	}
	t.Run("openapi needs no key", func(t *testing.T) {
		status, body := h.doKey("", "GET", "/v1/openapi.yaml", "")
		if status != 200 || !bytes.HasPrefix(body, []byte("openapi: 3.")) {
			t.Errorf("GET /v1/openapi.yaml: %d %.40q", status, body)
		}
	})
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t)
	s := h.createSandbox()
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		code   string
		field  string
	}{
		{"not JSON", "POST", "/v1/sandboxes", `{`, 400, "bad_request", ""},
		{"unknown field", "POST", "/v1/sandboxes", `{"templat":"desktop"}`, 400, "bad_request", "templat"},
		{"nested unknown field", "POST", "/v1/sandboxes", `{"resolution":{"w":800}}`, 400, "bad_request", "w"},
		{"trailing data", "POST", "/v1/sandboxes", `{} {}`, 400, "bad_request", ""},
		{"trailing garbage", "POST", "/v1/sandboxes", `{}x`, 400, "bad_request", ""},
		{"array", "POST", "/v1/sandboxes", `[]`, 400, "bad_request", ""},
		{"string timeout", "POST", "/v1/sandboxes", `{"timeout_s":"5"}`, 400, "bad_request", "timeout_s"},
		{"fractional timeout", "POST", "/v1/sandboxes", `{"timeout_s":1.5}`, 400, "bad_request", "timeout_s"},
		{"zero timeout", "POST", "/v1/sandboxes", `{"timeout_s":0}`, 400, "invalid_argument", "timeout_s"},
		{"huge timeout", "POST", "/v1/sandboxes", `{"timeout_s":86401}`, 400, "invalid_argument", "timeout_s"},
		{"narrow", "POST", "/v1/sandboxes", `{"resolution":{"width":63,"height":600}}`, 400, "invalid_argument", "resolution.width"},
		{"tall", "POST", "/v1/sandboxes", `{"resolution":{"width":800,"height":8193}}`, 400, "invalid_argument", "resolution.height"},
		{"dpi", "POST", "/v1/sandboxes", `{"dpi":49}`, 400, "invalid_argument", "dpi"},
		{"template", "POST", "/v1/sandboxes", `{"template":"a b"}`, 400, "invalid_argument", "template"},
		{"unknown template", "POST", "/v1/sandboxes", `{"template":"nosuch"}`, 404, "not_found", ""},
		{"metadata value type", "POST", "/v1/sandboxes", `{"metadata":{"k":1}}`, 400, "bad_request", "metadata"},
		{"metadata keys", "POST", "/v1/sandboxes", `{"metadata":` + manyKeys(65) + `}`, 400, "invalid_argument", "metadata"},
		{"metadata key length", "POST", "/v1/sandboxes", `{"metadata":{"` + strings.Repeat("k", 257) + `":"v"}}`, 400, "invalid_argument", "metadata"},
		{"metadata value length", "POST", "/v1/sandboxes", `{"metadata":{"k":"` + strings.Repeat("v", 1025) + `"}}`, 400, "invalid_argument", "metadata"},
		{"env name", "POST", "/v1/sandboxes", `{"env":{"1A":"x"}}`, 400, "invalid_argument", "env"},
		{"env reserved", "POST", "/v1/sandboxes", `{"env":{"CUBICLE_AGENT_TOKEN":"x"}}`, 400, "invalid_argument", "env"},
		{"cidr", "POST", "/v1/sandboxes", `{"network":{"allow_out":["1.2.3.0/24","nope"]}}`, 400, "invalid_argument", "network.allow_out[1]"},
		{"bare address", "POST", "/v1/sandboxes", `{"network":{"deny_out":["1.2.3.4"]}}`, 400, "invalid_argument", "network.deny_out[0]"},
		{"cpus", "POST", "/v1/sandboxes", `{"limits":{"cpus":-1}}`, 400, "invalid_argument", "limits.cpus"},
		{"pids", "POST", "/v1/sandboxes", `{"limits":{"pids":10}}`, 400, "invalid_argument", "limits.pids"},
		{"too large", "POST", "/v1/sandboxes", `{"metadata":{"k":"` + strings.Repeat("v", 2<<20) + `"}}`, 413, "too_large", ""},
		{"timeout missing", "POST", "/v1/sandboxes/" + s.ID + "/timeout", `{}`, 400, "invalid_argument", "timeout_s"},
		{"timeout empty body", "POST", "/v1/sandboxes/" + s.ID + "/timeout", ``, 400, "bad_request", ""},
		{"timeout negative", "POST", "/v1/sandboxes/" + s.ID + "/timeout", `{"timeout_s":-5}`, 400, "invalid_argument", "timeout_s"},
		{"metadata missing", "PATCH", "/v1/sandboxes/" + s.ID + "/metadata", `{}`, 400, "invalid_argument", "metadata"},
		{"metadata null", "PATCH", "/v1/sandboxes/" + s.ID + "/metadata", `{"metadata":null}`, 400, "invalid_argument", "metadata"},
		{"connect timeout", "POST", "/v1/sandboxes/" + s.ID + "/connect", `{"timeout_s":0}`, 400, "invalid_argument", "timeout_s"},
		{"network cidr", "PUT", "/v1/sandboxes/" + s.ID + "/network", `{"allow_out":["::1/129"]}`, 400, "invalid_argument", "allow_out[0]"},
		{"list state", "GET", "/v1/sandboxes?state=running,sleeping", ``, 400, "invalid_argument", "state"},
		{"list limit", "GET", "/v1/sandboxes?limit=101", ``, 400, "invalid_argument", "limit"},
		{"list cursor", "GET", "/v1/sandboxes?next=garbage", ``, 400, "invalid_argument", "next"},
		{"list unknown", "GET", "/v1/sandboxes?metdata=a=b", ``, 400, "invalid_argument", "metdata"},
		{"unknown id", "GET", "/v1/sandboxes/abcdefghij0123456789", ``, 404, "not_found", ""},
		{"malformed id", "DELETE", "/v1/sandboxes/NOT-AN-ID", ``, 404, "not_found", ""},
		{"unknown route", "GET", "/v1/sandboxes/" + s.ID + "/nothing", ``, 404, "not_found", ""},
		{"wrong method", "PUT", "/v1/sandboxes", `{}`, 404, "not_found", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := h.do(tt.method, tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("status %d (%.200s), want %d", status, body, tt.status)
			}
			e := decodeError(t, body)
			if e.Error.Code != tt.code || e.Error.Field != tt.field {
				t.Errorf("code %q field %q, want %q %q (message %q)", e.Error.Code, e.Error.Field, tt.code, tt.field, e.Error.Message)
			}
			if e.Error.Message == "" {
				t.Errorf("no message")
			}
		})
	}
	if got := h.be.Running(); len(got) != 1 || got[0] != s.ID {
		t.Errorf("after refused requests the backend runs %v, want only %s", got, s.ID)
	}
}

func manyKeys(n int) string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint("k", i)] = "v"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestInternalErrorHasID(t *testing.T) {
	h := newHarness(t)
	h.be.FailNext("create", errors.New("cgroup write failed at /sys/fs/cgroup/secret"))
	status, body := h.do("POST", "/v1/sandboxes", ``)
	if status != 500 {
		t.Fatalf("status %d %s, want 500", status, body)
	}
	e := decodeError(t, body)
	id := regexp.MustCompile(`error id ([0-9a-f]{12})`).FindStringSubmatch(e.Error.Message)
	if e.Error.Code != "internal" || id == nil {
		t.Fatalf("error %+v: want code internal and an error id", e.Error)
	}
	if strings.Contains(e.Error.Message, "secret") {
		t.Errorf("the answer shows the cause: %q", e.Error.Message)
	}
	var line string
	for l := range strings.SplitSeq(h.logs.String(), "\n") {
		if strings.Contains(l, "error_id="+id[1]) {
			line = l
		}
	}
	if !strings.Contains(line, "cgroup write failed") {
		t.Errorf("no log line with error id %s and the cause; logs:\n%s", id[1], h.logs.String())
	}
}

func TestSandboxJSON(t *testing.T) {
	h := newHarness(t)
	status, body := h.do("POST", "/v1/sandboxes", `{"template":"desktop","resolution":{"width":1280,"height":720},"dpi":110,
		"timeout_s":120,"metadata":{"user":"ada"},"env":{"LANG":"C.UTF-8"},
		"limits":{"cpus":2,"memory_mb":4096},"network":{"internet":false,"allow_out":["1.2.3.9/24"]}}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	var created apitype.Sandbox
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	want := apitype.Sandbox{
		ID: created.ID, Template: "desktop", State: "running",
		StartedAt: created.StartedAt, EndAt: created.EndAt,
		Metadata:   map[string]string{"user": "ada"},
		Resolution: apitype.Resolution{Width: 1280, Height: 720}, DPI: 110,
		Limits:      apitype.Limits{CPUs: 2, MemoryMB: 4096, Pids: 1024}, // pids: the server's default
		Network:     apitype.Network{Internet: false, AllowOut: []string{"1.2.3.0/24"}, DenyOut: []string{}},
		AccessToken: created.AccessToken,
		AgentURL:    h.srv.URL + "/sandboxes/" + created.ID + "/agent",
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("created sandbox (-want +got):\n%s", diff)
	}
	if created.AccessToken == "" || created.EndAt.Sub(created.StartedAt) < 120*time.Second {
		t.Errorf("token %v, end_at %v after start: want a token and at least the timeout", created.AccessToken != "",
			created.EndAt.Sub(created.StartedAt))
	}
	spec, _, netw, _ := h.be.Sandbox(created.ID)
	if !slices.Contains(spec.Env, "LANG=C.UTF-8") || netw.Internet {
		t.Errorf("backend spec env %v, network %+v: want LANG and no internet", spec.Env, netw)
	}
	var raw map[string]any
	json.Unmarshal(body, &raw)
	for _, k := range []string{"id", "template", "state", "started_at", "end_at", "metadata", "resolution", "dpi",
		"limits", "network", "access_token", "agent_url"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("create answer has no %q", k)
		}
	}

	tokenIn := func(method, path, body string, wantStatus int) bool {
		t.Helper()
		status, b := h.do(method, path, body)
		if status != wantStatus {
			t.Fatalf("%s %s: %d %s", method, path, status, b)
		}
		return strings.Contains(string(b), string(created.AccessToken))
	}
	base := "/v1/sandboxes/" + created.ID
	for _, c := range []struct {
		method, path, body string
		status             int
		token              bool
	}{
		{"GET", base, "", 200, true},
		{"GET", "/v1/sandboxes", "", 200, false},
		{"POST", base + "/timeout", `{"timeout_s":60}`, 200, false},
		{"PATCH", base + "/metadata", `{"metadata":{}}`, 200, false},
		{"PUT", base + "/network", `{"internet":true}`, 200, false},
		{"POST", base + "/connect", ``, 200, true},
	} {
		if got := tokenIn(c.method, c.path, c.body, c.status); got != c.token {
			t.Errorf("%s %s shows the access token: %v, want %v", c.method, c.path, got, c.token)
		}
	}
	status, body = h.do("GET", base+"/metrics", "")
	var m map[string]any
	if status != 200 || json.Unmarshal(body, &m) != nil {
		t.Fatalf("metrics: %d %s", status, body)
	}
	for _, k := range []string{"cpu_count", "cpu_used_pct", "mem_used", "mem_total", "mem_cache", "disk_used", "disk_total", "timestamp"} {
		if _, ok := m[k]; !ok {
			t.Errorf("metrics have no %q: %s", k, body)
		}
	}
	if m["cpu_count"] != 2.0 || m["mem_total"] != float64(4096<<20) {
		t.Errorf("metrics %s: want the fake's 2 CPUs and 4096 MiB", body)
	}
}

func TestKeyManager(t *testing.T) {
	st := sandboxtest.NewStore()
	km := NewKeyManager(st)
	ctx := context.Background()
	first, err := km.Bootstrap(ctx)
	if err != nil || !ValidKey(first) {
		t.Fatalf("Bootstrap on an empty store = %q, %v; want a key", first, err)
	}
	if again, err := km.Bootstrap(ctx); again != "" || err != nil {
		t.Errorf("second Bootstrap = %q, %v; want no key", again, err)
	}
	if owner, err := km.Authenticate(ctx, first); owner != DefaultOwner || err != nil {
		t.Errorf("Authenticate(bootstrap key) = %q, %v; want %q", owner, err, DefaultOwner)
	}
	if _, err := km.Create(ctx, "bad owner!"); err == nil {
		t.Errorf("Create with a bad owner name succeeded")
	}
	keys, _ := st.ListKeys(ctx)
	if len(keys) != 1 || keys[0].Hash == first || strings.Contains(keys[0].Hash, first[4:]) || !strings.HasPrefix(first, keys[0].Prefix) {
		t.Errorf("stored key %+v: want only a hash and a prefix of %s", keys, first[:12])
	}
	infos, err := km.List(ctx)
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %v, %v", infos, err)
	}
	if err := km.Revoke(ctx, infos[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := km.Authenticate(ctx, first); err == nil {
		t.Errorf("a revoked key still authenticates")
	}
	if again, _ := km.Bootstrap(ctx); again != "" {
		t.Errorf("Bootstrap with only revoked keys made a new key")
	}
}

// TestOpenAPIMatchesRoutes checks that the document describes exactly the
// routes the handler serves, besides those it marks served by another
// package (x-served-by).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var h Handler
	var served []string
	for _, r := range h.routes() {
		served = append(served, r.pattern)
	}
	served = append(served, "GET /v1/openapi.yaml")
	var documented []string
	path := ""
	sc := bufio.NewScanner(bytes.NewReader(openAPI))
	inPaths := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && !strings.HasPrefix(line, " ") && line != "":
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && strings.HasPrefix(line, "    x-served-by:"):
			path = "" // another package's routes
		case inPaths && path != "" && regexp.MustCompile(`^    (get|post|put|patch|delete):`).MatchString(line):
			documented = append(documented, strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(line), ":"))+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	if diff := cmp.Diff(served, documented); diff != "" {
		t.Errorf("routes served vs documented (-served +documented):\n%s", diff)
	}
}
