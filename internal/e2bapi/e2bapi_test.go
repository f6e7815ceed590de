package e2bapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/envd"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// harness is the E2B API over a manager on the fake backend, served over
// real HTTP, with the /v1 key manager.
type harness struct {
	t    *testing.T
	srv  *httptest.Server
	be   *sandboxtest.Backend
	m    *sandbox.Manager
	keys *api.KeyManager
	key  string // alice's key, in its E2B form
}

// newHarness starts the handler; mods may change its config first.
func newHarness(t *testing.T, mods ...func(*Config)) *harness {
	t.Helper()
	be := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 50 * time.Millisecond})
	t.Cleanup(be.Close)
	st := sandboxtest.NewStore()
	m, err := sandbox.NewManager(sandbox.Config{Agent: "/usr/bin/cubicle", ReadyTimeout: time.Minute},
		be, st, sandboxtest.Templates{"desktop": "/templates/desktop", "other": "/templates/other"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	keys := api.NewKeyManager(st)
	key, err := keys.Create(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Domain:   "e2b.test",
		Defaults: sandbox.Limits{CPUs: 1, MemoryMB: 2048, DiskMB: 2048},
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	h, err := NewHandler(cfg, m, keys)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, be: be, m: m, keys: keys, key: api.E2BKey(key)}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with alice's key in X-API-KEY, as the SDK does.
func (h *harness) do(method, path, body string) response {
	h.t.Helper()
	return h.doKey(h.key, method, path, body)
}

func (h *harness) doKey(key, method, path, body string) response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(h.t.Context(), method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-KEY", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
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
	return response{resp.StatusCode, resp.Header, b}
}

// create makes a sandbox through POST /v2/sandboxes.
func (h *harness) create(body string) Sandbox {
	h.t.Helper()
	r := h.do("POST", "/v2/sandboxes", body)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create %s: %d %s", body, r.status, r.body)
	}
	var s Sandbox
	if err := json.Unmarshal(r.body, &s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// wantError checks that r is an E2B error body whose code is its status.
func wantError(t *testing.T, what string, r response, status int) {
	t.Helper()
	var e Error
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%s: body %q is not an error body: %v", what, r.body, err)
	}
	if r.status != status || e.Code != status || e.Message == "" {
		t.Errorf("%s = %d %s; want %d with {\"code\": %d, \"message\": ...}", what, r.status, r.body, status, status)
	}
}

// golden compares body, with its variable values replaced, to
// testdata/name.json.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v: %s", name, err, body)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(normalize(v)); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from %s (-want +got):\n%s", name, path, diff)
	}
}

// variable are the fields whose values change from run to run.
var variable = map[string]string{
	"sandboxID": "<id>", "envdAccessToken": "<token>", "startedAt": "<time>", "endAt": "<time>",
	"timestamp": "<time>", "timestampUnix": "<unix>", "envdVersion": "<envd>",
}

func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, val := range v {
			if repl, ok := variable[k]; ok {
				v[k] = repl
			} else {
				v[k] = normalize(val)
			}
		}
	case []any:
		for i := range v {
			v[i] = normalize(v[i])
		}
	}
	return v
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	native := "cbk_" + strings.TrimPrefix(h.key, "e2b_")
	tests := []struct {
		name   string
		header string
		value  string
		status int
	}{
		{"e2b form", "X-API-KEY", h.key, 200},
		{"native form", "X-API-KEY", native, 200},
		{"bearer", "Authorization", "Bearer " + h.key, 200},
		{"no key", "", "", 401},
		{"malformed", "X-API-KEY", "e2b_123", 401},
		{"unknown", "X-API-KEY", "e2b_" + strings.Repeat("0", 40), 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", h.srv.URL+"/v2/sandboxes", nil)
			if tt.header != "" {
				req.Header.Set(tt.header, tt.value)
			}
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			r := response{resp.StatusCode, resp.Header, b}
			if tt.status == 200 {
				if r.status != 200 || strings.TrimSpace(string(b)) != "[]" {
					t.Errorf("GET /v2/sandboxes = %d %s, want 200 []", r.status, b)
				}
				return
			}
			wantError(t, "GET /v2/sandboxes", r, tt.status)
		})
	}
}

func TestHealthAndUnknownRoutes(t *testing.T) {
	h := newHarness(t)
	if r := h.doKey("", "GET", "/health", ""); r.status != 200 {
		t.Errorf("GET /health = %d %s, want 200", r.status, r.body)
	}
	for _, path := range []string{"/sandboxes/x/fork", "/v2/sandboxes/x/logs"} {
		wantError(t, "POST "+path, h.do("POST", path, "{}"), 404)
	}
	wantError(t, "no key on an unknown route", h.doKey("", "POST", "/sandboxes/x/fork", "{}"), 401)
}

func TestCreate(t *testing.T) {
	h := newHarness(t)
	// The body the SDK sent in a captured run, and @e2b/desktop's.
	start := time.Now()
	r := h.do("POST", "/v2/sandboxes",
		`{"templateID":"base","metadata":{"a":"b"},"envVars":{"FOO":"bar"},"timeout":120,"allow_internet_access":true}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	golden(t, "create", r.body)
	var s Sandbox
	json.Unmarshal(r.body, &s)
	spec, _, _, ok := h.be.Sandbox(s.SandboxID)
	if !ok {
		t.Fatalf("the backend does not run %s", s.SandboxID)
	}
	if !slices.Contains(spec.Env, "FOO=bar") || !slices.Contains(spec.Env, "DISPLAY=:0") {
		t.Errorf("sandbox env = %q, want FOO=bar and DISPLAY=:0", spec.Env)
	}
	rec, err := h.m.Get(t.Context(), "alice", s.SandboxID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Params.DisplayMode != sandbox.DisplayExternal || rec.Template != "desktop" || rec.Metadata["a"] != "b" {
		t.Errorf("record = display %q template %q metadata %v; want external, desktop (for base), a=b",
			rec.Params.DisplayMode, rec.Template, rec.Metadata)
	}
	if left := rec.EndAt.Sub(start); left < 120*time.Second || left > 180*time.Second {
		t.Errorf("endAt is %v after the request, want about 120s", left)
	}
	if s.EnvdVersion != envd.Version {
		t.Errorf("envdVersion = %q, want the agent's envd.Version %q", s.EnvdVersion, envd.Version)
	}
	if rec.Token != s.EnvdAccessToken || s.EnvdAccessToken == "" {
		t.Errorf("envdAccessToken is not the sandbox's token")
	}

	d := h.create(`{"templateID":"desktop","envVars":{"DISPLAY":":0"}}`)
	spec, _, _, _ = h.be.Sandbox(d.SandboxID)
	if n := len(slices.DeleteFunc(slices.Clone(spec.Env), func(kv string) bool { return !strings.HasPrefix(kv, "DISPLAY=") })); n != 1 {
		t.Errorf("desktop sandbox env = %q, want DISPLAY once", spec.Env)
	}
	rec, _ = h.m.Get(t.Context(), "alice", d.SandboxID)
	if got := rec.EndAt.Sub(rec.Created); got < sandbox.DefaultTimeout {
		t.Errorf("default timeout gives %v, want %v", got, sandbox.DefaultTimeout)
	}

	// Fields this server does not know are ignored, as E2B ignores them.
	h.create(`{"templateID":"desktop","secure":true,"somethingNew":{"x":1},"autoPause":false}`)
}

func TestCreateRejects(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, body string
		status     int
	}{
		{"empty body", ``, 400},
		{"not json", `{"templateID":`, 400},
		{"no template", `{"timeout":60}`, 400},
		{"wrong type", `{"templateID":"desktop","timeout":"60"}`, 400},
		{"zero timeout", `{"templateID":"desktop","timeout":0}`, 400},
		{"long timeout", `{"templateID":"desktop","timeout":86401}`, 400},
		{"unknown template", `{"templateID":"nosuch"}`, 404},
		{"bad template name", `{"templateID":"../x"}`, 400},
		{"bad env", `{"templateID":"desktop","envVars":{"1A":"x"}}`, 400},
		{"bad display", `{"templateID":"desktop","envVars":{"DISPLAY":"remote:0"}}`, 400},
		{"domain in allowOut", `{"templateID":"desktop","network":{"allowOut":["example.com"]}}`, 400},
		{"rules", `{"templateID":"desktop","network":{"rules":{"a.com":[]}}}`, 400},
		{"auto pause", `{"templateID":"desktop","autoPause":true}`, 400},
		{"auto resume", `{"templateID":"desktop","autoResume":{"enabled":true}}`, 400},
		{"volumes", `{"templateID":"desktop","volumeMounts":[{"name":"v","path":"/data"}]}`, 400},
		{"mcp", `{"templateID":"desktop","mcp":{"x":{}}}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, "create "+tt.body, h.do("POST", "/v2/sandboxes", tt.body), tt.status)
		})
	}
	if got := h.be.Running(); len(got) != 0 {
		t.Errorf("the backend runs %v after refused creations", got)
	}
}

func TestCreateNetwork(t *testing.T) {
	h := newHarness(t)
	s := h.create(`{"templateID":"desktop","allow_internet_access":false,"network":{"allowOut":["1.1.1.1","10.0.0.0/8"],"denyOut":["0.0.0.0/0"],"allowPublicTraffic":true}}`)
	_, _, netw, _ := h.be.Sandbox(s.SandboxID)
	want := sandbox.NetworkPolicy{
		AllowOut: []netip.Prefix{netip.MustParsePrefix("1.1.1.1/32"), netip.MustParsePrefix("10.0.0.0/8")},
		DenyOut:  []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
	}
	if diff := cmp.Diff(want, netw, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("network policy (-want +got):\n%s", diff)
	}
	r := h.do("GET", "/sandboxes/"+s.SandboxID, "")
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	golden(t, "detail-network", r.body)

	if r := h.do("PUT", "/sandboxes/"+s.SandboxID+"/network", `{"allowOut":[],"allow_internet_access":true}`); r.status != http.StatusNoContent {
		t.Fatalf("update network: %d %s", r.status, r.body)
	}
	_, _, netw, _ = h.be.Sandbox(s.SandboxID)
	if !netw.Internet || len(netw.AllowOut) != 0 || len(netw.DenyOut) != 1 {
		t.Errorf("after the update the policy is %+v; want internet, no allowOut, denyOut kept", netw)
	}
	wantError(t, "update with a domain", h.do("PUT", "/sandboxes/"+s.SandboxID+"/network", `{"denyOut":["x.org"]}`), 400)
	wantError(t, "update unknown", h.do("PUT", "/sandboxes/"+strings.Repeat("a", 20)+"/network", `{}`), 404)
}

func TestGetKillTimeout(t *testing.T) {
	h := newHarness(t)
	s := h.create(`{"templateID":"desktop","metadata":{"k":"v"},"timeout":60}`)
	r := h.do("GET", "/sandboxes/"+s.SandboxID, "")
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	golden(t, "detail", r.body)

	before, _ := h.m.Get(t.Context(), "alice", s.SandboxID)
	if r := h.do("POST", "/sandboxes/"+s.SandboxID+"/timeout", `{"timeout":3600}`); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("timeout = %d %q, want 204 and no body", r.status, r.body)
	}
	after, _ := h.m.Get(t.Context(), "alice", s.SandboxID)
	if got := after.EndAt.Sub(before.EndAt); got < 3500*time.Second {
		t.Errorf("the timeout moved the end by %v, want about an hour", got)
	}
	wantError(t, "timeout without a body", h.do("POST", "/sandboxes/"+s.SandboxID+"/timeout", ``), 400)
	wantError(t, "timeout without timeout", h.do("POST", "/sandboxes/"+s.SandboxID+"/timeout", `{}`), 400)
	wantError(t, "timeout 0", h.do("POST", "/sandboxes/"+s.SandboxID+"/timeout", `{"timeout":0}`), 400)

	if r := h.do("DELETE", "/sandboxes/"+s.SandboxID, ""); r.status != http.StatusNoContent {
		t.Fatalf("kill: %d %s", r.status, r.body)
	}
	if got := h.be.Running(); len(got) != 0 {
		t.Errorf("the backend still runs %v", got)
	}
	unknown := strings.Repeat("z", 20)
	for _, id := range []string{s.SandboxID, unknown, "not-an-id"} {
		wantError(t, "kill "+id, h.do("DELETE", "/sandboxes/"+id, ""), 404)
		wantError(t, "get "+id, h.do("GET", "/sandboxes/"+id, ""), 404)
		wantError(t, "timeout "+id, h.do("POST", "/sandboxes/"+id+"/timeout", `{"timeout":60}`), 404)
		wantError(t, "connect "+id, h.do("POST", "/v2/sandboxes/"+id+"/connect", `{"timeout":60}`), 404)
		wantError(t, "pause "+id, h.do("POST", "/sandboxes/"+id+"/pause", `{}`), 404)
		wantError(t, "metrics "+id, h.do("GET", "/sandboxes/"+id+"/metrics", ""), 404)
	}
}

func TestPauseConnect(t *testing.T) {
	h := newHarness(t)
	s := h.create(`{"templateID":"desktop"}`)
	id := s.SandboxID
	if r := h.do("POST", "/v2/sandboxes/"+id+"/connect", `{"timeout":600}`); r.status != http.StatusOK {
		t.Errorf("connect to a running sandbox = %d %s, want 200", r.status, r.body)
	} else {
		golden(t, "connect", r.body)
	}
	wantError(t, "resume a running sandbox", h.do("POST", "/sandboxes/"+id+"/resume", `{}`), 409)
	if r := h.do("POST", "/sandboxes/"+id+"/pause", `{}`); r.status != http.StatusNoContent {
		t.Fatalf("pause = %d %s, want 204", r.status, r.body)
	}
	if _, paused, _, _ := h.be.Sandbox(id); !paused {
		t.Errorf("the backend did not pause %s", id)
	}
	wantError(t, "pause again", h.do("POST", "/sandboxes/"+id+"/pause", ``), 409)
	var d SandboxDetail
	json.Unmarshal(h.do("GET", "/sandboxes/"+id, "").body, &d)
	if d.State != "paused" {
		t.Errorf("state of a paused sandbox = %q, want paused", d.State)
	}
	r := h.do("POST", "/v2/sandboxes/"+id+"/connect", `{}`)
	if r.status != http.StatusCreated {
		t.Fatalf("connect to a paused sandbox = %d %s, want 201", r.status, r.body)
	}
	var c Sandbox
	json.Unmarshal(r.body, &c)
	if c.SandboxID != id || c.EnvdAccessToken != s.EnvdAccessToken {
		t.Errorf("connect answered %+v, want the same sandbox and token", c)
	}
	if _, paused, _, _ := h.be.Sandbox(id); paused {
		t.Errorf("connect did not resume %s", id)
	}
	// The resume of older SDKs.
	h.do("POST", "/sandboxes/"+id+"/pause", ``)
	if r := h.do("POST", "/sandboxes/"+id+"/resume", `{"timeout":60}`); r.status != http.StatusCreated {
		t.Errorf("resume = %d %s, want 201", r.status, r.body)
	}
	wantError(t, "connect with a bad timeout", h.do("POST", "/v2/sandboxes/"+id+"/connect", `{"timeout":-1}`), 400)
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	s := h.create(`{"templateID":"desktop"}`)
	r := h.do("GET", "/sandboxes/"+s.SandboxID+"/metrics?start=1700000000&end=1800000000", "")
	if r.status != 200 {
		t.Fatalf("metrics: %d %s", r.status, r.body)
	}
	var ms []map[string]any
	if err := json.Unmarshal(r.body, &ms); err != nil || len(ms) != 1 {
		t.Fatalf("metrics = %s, %v; want one sample", r.body, err)
	}
	var keys []string
	for k := range ms[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"cpuCount", "cpuUsedPct", "diskTotal", "diskUsed", "memCache", "memTotal", "memUsed", "timestamp", "timestampUnix"}
	if !slices.Equal(keys, want) {
		t.Errorf("metric fields = %q, want %q", keys, want)
	}
	if ts, err := time.Parse(time.RFC3339, ms[0]["timestamp"].(string)); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("timestamp %v is not a recent RFC 3339 time: %v", ms[0]["timestamp"], err)
	}
	wantError(t, "metrics with a bad start", h.do("GET", "/sandboxes/"+s.SandboxID+"/metrics?start=yesterday", ""), 400)
}

func TestOwnersApart(t *testing.T) {
	h := newHarness(t)
	s := h.create(`{"templateID":"desktop"}`)
	bob, err := h.keys.Create(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	bobKey := api.E2BKey(bob)
	wantError(t, "bob gets alice's sandbox", h.doKey(bobKey, "GET", "/sandboxes/"+s.SandboxID, ""), 404)
	wantError(t, "bob kills alice's sandbox", h.doKey(bobKey, "DELETE", "/sandboxes/"+s.SandboxID, ""), 404)
	if r := h.doKey(bobKey, "GET", "/v2/sandboxes", ""); !bytes.Equal(bytes.TrimSpace(r.body), []byte("[]")) {
		t.Errorf("bob's list = %s, want []", r.body)
	}
}
