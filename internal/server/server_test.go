package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
	"github.com/cubicle-dev/cubicle/internal/server"
)

var templates = sandboxtest.Templates{"desktop": "/templates/desktop"}

// running is a server serving in the background.
type running struct {
	t      testing.TB
	srv    *server.Server
	url    string
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

type options struct {
	dir    string
	be     *sandboxtest.Backend
	net    *sandboxtest.Network // nil: real TCP on loopback
	domain string
	proxy  func(server.ResolveFunc) (http.Handler, error) // nil: newTestProxy
	// e2bDenyPublic is Config.E2BDenyPublicTraffic.
	e2bDenyPublic bool
}

// startServer serves on a fresh port (or the in-memory network) until
// stop.
func startServer(t testing.TB, o options) *running {
	t.Helper()
	cfg := server.Config{
		StateDir:        o.dir,
		Domain:          o.domain,
		Agent:           "/usr/bin/cubicle",
		Logger:          slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		ShutdownTimeout: 5 * time.Second,
		ReadyTimeout:    time.Minute,
		NewProxy:        o.proxy,

		E2BDenyPublicTraffic: o.e2bDenyPublic,
	}
	if cfg.NewProxy == nil {
		cfg.NewProxy = newTestProxy
	}
	var (
		ln     net.Listener
		client = &http.Client{}
		err    error
	)
	if o.net != nil {
		cfg.DialContext = o.net.DialContext
		ln, err = o.net.Listen("192.0.2.1:8080")
		client.Transport = &http.Transport{DialContext: o.net.DialContext}
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, o.be, templates)
	if err != nil {
		ln.Close()
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, srv: srv, url: "http://" + ln.Addr().String(), client: client, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	return r
}

// stop stops the server and checks that it stopped cleanly.
func (r *running) stop() {
	r.t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("Serve: %v", err)
	}
	if tr, ok := r.client.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// key issues a key for owner.
func (r *running) key(owner string) string {
	r.t.Helper()
	k, err := r.srv.Keys().Create(context.Background(), owner)
	if err != nil {
		r.t.Fatal(err)
	}
	return k
}

// call sends a request with key and decodes a JSON answer into out (when
// not nil); it returns the status.
func (r *running) call(key, method, path string, body any, out any) int {
	r.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			r.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, r.url+path, rd)
	if err != nil {
		r.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			r.t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// create makes a sandbox and fails the test unless it is created.
func (r *running) create(key string, body any) apitype.Sandbox {
	r.t.Helper()
	var raw json.RawMessage
	if status := r.call(key, "POST", "/v1/sandboxes", body, &raw); status != http.StatusCreated {
		r.t.Fatalf("create: status %d: %s", status, raw)
	}
	var s apitype.Sandbox
	if err := json.Unmarshal(raw, &s); err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (r *running) get(key, id string) (apitype.Sandbox, int) {
	r.t.Helper()
	var s apitype.Sandbox
	status := r.call(key, "GET", "/v1/sandboxes/"+id, nil, &s)
	return s, status
}

func (r *running) list(key, query string) (apitype.ListResponse, int) {
	r.t.Helper()
	var l apitype.ListResponse
	status := r.call(key, "GET", "/v1/sandboxes?"+query, nil, &l)
	return l, status
}

type errBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// newTestProxy is a minimal proxy for the hook: it forwards
// /sandboxes/{id}/agent/<path> to the agent Resolve names, with its token,
// and answers host-routed and E2b-Sandbox-Id requests with what it
// understood.
func newTestProxy(resolve server.ResolveFunc) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("E2b-Sandbox-Id"); id != "" {
			fmt.Fprintf(w, "header %s", id)
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/sandboxes/")
		if !ok {
			fmt.Fprintf(w, "host %s", r.Host)
			return
		}
		id, path, _ := strings.Cut(rest, "/agent")
		rt, ok := resolve(id)
		addr, token := rt.Agent, rt.Token
		if !ok || r.Header.Get("X-Access-Token") != token {
			http.Error(w, "no such sandbox", http.StatusNotFound)
			return
		}
		rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: addr.String()})
			pr.Out.URL.Path = path
		}}
		rp.ServeHTTP(w, r)
	}), nil
}

func TestLifecycle(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 100 * time.Millisecond})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be, domain: "sandbox.test"})
	defer r.stop()
	if !api.ValidKey(r.srv.FirstKey()) {
		t.Fatalf("FirstKey on a new state directory = %q, want a key", r.srv.FirstKey())
	}
	key := r.key("alice")

	s := r.create(key, map[string]any{"timeout_s": 120, "metadata": map[string]string{"user": "ada"},
		"env": map[string]string{"GREETING": "hello world"}})
	if s.State != "running" || s.Metadata["user"] != "ada" || s.AccessToken == "" {
		t.Fatalf("created %+v: want running with metadata and a token", s)
	}
	if want := r.url + "/sandboxes/" + s.ID + "/agent"; s.AgentURL != want {
		t.Errorf("agent_url = %q, want %q", s.AgentURL, want)
	}
	spec, _, _, _ := be.Sandbox(s.ID)
	if !strings.Contains(strings.Join(spec.Env, "\n"), "GREETING=hello world") {
		t.Errorf("the sandbox's env %q lacks GREETING", spec.Env)
	}

	t.Run("proxy reaches the agent", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.AgentURL+"/v1/ready", nil)
		req.Header.Set("X-Access-Token", string(s.AccessToken))
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"ready":true`) {
			t.Errorf("GET agent_url/v1/ready: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("host and header routing", func(t *testing.T) {
		for _, tt := range []struct {
			host, header, want string
		}{
			{"49983-" + s.ID + ".sandbox.test", "", "host 49983-" + s.ID + ".sandbox.test"},
			{"", s.ID, "header " + s.ID},
		} {
			req, _ := http.NewRequest("GET", r.url+"/v1/sandboxes", nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.header != "" {
				req.Header.Set("E2b-Sandbox-Id", tt.header)
			}
			resp, err := r.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != tt.want {
				t.Errorf("host %q header %q reached %q, want the proxy saying %q", tt.host, tt.header, body, tt.want)
			}
		}
	})

	before := s.EndAt
	var got apitype.Sandbox
	if st := r.call(key, "POST", "/v1/sandboxes/"+s.ID+"/timeout", map[string]int{"timeout_s": 3600}, &got); st != 200 || !got.EndAt.After(before) {
		t.Errorf("extend timeout: %d, end_at %v (was %v)", st, got.EndAt, before)
	}
	if st := r.call(key, "POST", "/v1/sandboxes/"+s.ID+"/timeout", map[string]int{"timeout_s": 60}, &got); st != 200 || !got.EndAt.Before(before) {
		t.Errorf("shorten timeout: %d, end_at %v (was %v)", st, got.EndAt, before)
	}
	if st := r.call(key, "PATCH", "/v1/sandboxes/"+s.ID+"/metadata", `{"metadata":{"user":"grace"}}`, &got); st != 200 || got.Metadata["user"] != "grace" {
		t.Errorf("set metadata: %d, %v", st, got.Metadata)
	}
	if st := r.call(key, "PUT", "/v1/sandboxes/"+s.ID+"/network", `{"internet":false,"deny_out":["9.9.9.9/32"]}`, &got); st != 200 || got.Network.Internet {
		t.Errorf("set network: %d, %+v", st, got.Network)
	}
	if _, _, n, _ := be.Sandbox(s.ID); n.Internet || len(n.DenyOut) != 1 {
		t.Errorf("backend network after PUT: %+v", n)
	}

	if st := r.call(key, "POST", "/v1/sandboxes/"+s.ID+"/pause", nil, nil); st != 204 {
		t.Errorf("pause: %d, want 204", st)
	}
	var e errBody
	if st := r.call(key, "POST", "/v1/sandboxes/"+s.ID+"/pause", nil, &e); st != 409 || e.Error.Code != "conflict" {
		t.Errorf("pause again: %d %+v, want 409 conflict", st, e)
	}
	if got, _ := r.get(key, s.ID); got.State != "paused" {
		t.Errorf("after pause: state %q", got.State)
	}
	if st := r.call(key, "POST", "/v1/sandboxes/"+s.ID+"/connect", nil, &got); st != 200 || got.State != "running" || got.AccessToken != s.AccessToken {
		t.Errorf("connect: %d, state %q, same token %v", st, got.State, got.AccessToken == s.AccessToken)
	}
	if _, paused, _, _ := be.Sandbox(s.ID); paused {
		t.Errorf("connect did not resume the sandbox in the backend")
	}
	var m map[string]any
	if st := r.call(key, "GET", "/v1/sandboxes/"+s.ID+"/metrics", nil, &m); st != 200 || m["cpu_count"] == nil || m["timestamp"] == nil {
		t.Errorf("metrics: %d %v", st, m)
	}

	if st := r.call(key, "DELETE", "/v1/sandboxes/"+s.ID, nil, nil); st != 204 {
		t.Fatalf("kill: %d, want 204", st)
	}
	if len(be.Running()) != 0 {
		t.Errorf("after kill the backend runs %v", be.Running())
	}
	if st := r.call(key, "DELETE", "/v1/sandboxes/"+s.ID, nil, &e); st != 404 || e.Error.Code != "not_found" {
		t.Errorf("kill again: %d %+v, want 404 not_found", st, e)
	}
	if got, st := r.get(key, s.ID); st != 200 || got.State != "killed" || got.AccessToken != "" {
		t.Errorf("get after kill: %d, state %q, token shown %v; want killed without token", st, got.State, got.AccessToken != "")
	}
	if l, _ := r.list(key, ""); len(l.Sandboxes) != 0 {
		t.Errorf("the default list shows %d killed sandboxes", len(l.Sandboxes))
	}
}

func TestUnauthorized(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be})
	defer r.stop()
	key := r.key("alice")
	infos, err := r.srv.Keys().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range infos {
		if k.Owner == "alice" {
			r.srv.Keys().Revoke(context.Background(), k.ID)
		}
	}
	for name, k := range map[string]string{"missing": "", "revoked": key, "unknown": "cbk_" + strings.Repeat("ab", 20)} {
		var e errBody
		if st := r.call(k, "POST", "/v1/sandboxes", `{}`, &e); st != 401 || e.Error.Code != "unauthorized" {
			t.Errorf("%s key: %d %+v, want 401 unauthorized", name, st, e)
		}
	}
	if len(be.Running()) != 0 {
		t.Errorf("unauthorized creates ran %v", be.Running())
	}
}

func TestInvalidBodies(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	r := startServer(t, options{dir: t.TempDir(), be: be})
	defer r.stop()
	key := r.srv.FirstKey()
	for _, tt := range []struct {
		body, code, field string
		status            int
	}{
		{`{"resolution":{"width":10000,"height":768}}`, "invalid_argument", "resolution.width", 400},
		{`{"unknown":1}`, "bad_request", "unknown", 400},
		{`{}{}`, "bad_request", "", 400},
		{`{"network":{"allow_out":["300.1.1.1/8"]}}`, "invalid_argument", "network.allow_out[0]", 400},
		{`{"env":{"A-B":"x"}}`, "invalid_argument", "env", 400},
	} {
		var e errBody
		if st := r.call(key, "POST", "/v1/sandboxes", tt.body, &e); st != tt.status || e.Error.Code != tt.code || e.Error.Field != tt.field {
			t.Errorf("create %s: %d %+v, want %d %s on %q", tt.body, st, e, tt.status, tt.code, tt.field)
		}
	}
}

func TestProxyDisabled(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	srv, err := server.New(server.Config{StateDir: t.TempDir(), Agent: "/bin/true"}, be, templates)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	req := httptest.NewRequest("GET", "/sandboxes/abcdefghij0123456789/agent/v1/ready", nil)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"unavailable"`) {
		t.Errorf("without a proxy: %d %s, want 503 unavailable", rec.Code, rec.Body.String())
	}
}

func newRequest(url, key string) (*http.Request, error) {
	req, err := http.NewRequest("POST", url, strings.NewReader(`{}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	return req, nil
}
