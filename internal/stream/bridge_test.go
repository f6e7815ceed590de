package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// fakeAgent answers GET /v1/stream/rfb like the agent: it upgrades, greets
// as an RFB 3.8 server and records what reaches it.
type fakeAgent struct {
	srv   *httptest.Server
	token string

	mu    sync.Mutex
	got   bytes.Buffer
	conns []net.Conn
}

func newFakeAgent(t *testing.T) *fakeAgent {
	a := &fakeAgent{token: "agent-token"}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/stream/rfb" || r.Header.Get("Upgrade") != "rfb" || r.Header.Get("X-Access-Token") != a.token {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]*desktop.Error{"error": desktop.Errorf(desktop.CodeInvalid, "bad stream request")})
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.conns = append(a.conns, c)
		a.mu.Unlock()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: rfb\r\n\r\nRFB 003.008\n")
		buf := make([]byte, 4096)
		for {
			n, err := brw.Read(buf)
			a.mu.Lock()
			a.got.Write(buf[:n])
			a.mu.Unlock()
			if err != nil {
				c.Close()
				return
			}
		}
	}))
	t.Cleanup(func() {
		a.mu.Lock()
		for _, c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
		a.srv.Close()
	})
	return a
}

func (a *fakeAgent) received() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return bytes.Clone(a.got.Bytes())
}

func (a *fakeAgent) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got.Reset()
}

// fakeSandboxes is one running sandbox of alice.
type fakeSandboxes struct {
	addr netip.AddrPort
	mu   sync.Mutex
	down bool
}

func (f *fakeSandboxes) Get(ctx context.Context, owner, id string) (sandbox.Record, error) {
	if owner != "alice" || id != sbxA {
		return sandbox.Record{}, desktop.Errorf(desktop.CodeNotFound, "sandbox %q not found", id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := sandbox.StateRunning
	if f.down {
		st = sandbox.StatePaused
	}
	return sandbox.Record{ID: id, Owner: owner, State: st}, nil
}

func (f *fakeSandboxes) Route(id string) (sandbox.Route, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return sandbox.Route{Agent: f.addr, Token: "agent-token"}, id == sbxA && !f.down
}

func (f *fakeSandboxes) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

type fakeAuth struct{}

func (fakeAuth) Authenticate(ctx context.Context, key string) (string, error) {
	if key == "alice-key" {
		return "alice", nil
	}
	return "", desktop.Errorf(desktop.CodeUnauthorized, "unknown API key")
}

type harness struct {
	t     *testing.T
	svc   *Service
	srv   *httptest.Server
	agent *fakeAgent
	sb    *fakeSandboxes
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	agent := newFakeAgent(t)
	sb := &fakeSandboxes{addr: netip.MustParseAddrPort(agent.srv.Listener.Addr().String())}
	novnc := t.TempDir()
	os.MkdirAll(filepath.Join(novnc, "core"), 0o755)
	os.WriteFile(filepath.Join(novnc, "core", "rfb.js"), []byte("export default class RFB {}\n"), 0o644)
	svc, err := New(Config{StateDir: t.TempDir(), NoVNCDir: novnc, CheckInterval: 20 * time.Millisecond}, sb, fakeAuth{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", svc.APIHandler())
	mux.Handle("/view/", svc.ViewHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		svc.Close()
		srv.Close()
		if n := svc.Streams(""); n != 0 {
			t.Errorf("%d streams open after Close", n)
		}
	})
	return &harness{t: t, svc: svc, srv: srv, agent: agent, sb: sb}
}

func (h *harness) call(method, path, body string, out any) int {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer alice-key")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (h *harness) url(body string) apitype.StreamURL {
	h.t.Helper()
	var u apitype.StreamURL
	if st := h.call("POST", "/v1/sandboxes/"+sbxA+"/stream", body, &u); st != http.StatusCreated {
		h.t.Fatalf("stream URL: status %d", st)
	}
	return u
}

// dial opens the WebSocket of u and reads the server's banner.
func (h *harness) dial(u apitype.StreamURL) *websocket.Conn {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u.WebSocketURL, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	_, b, err := c.Read(ctx)
	if err != nil || string(b) != "RFB 003.008\n" {
		h.t.Fatalf("banner %q, %v", b, err)
	}
	return c
}

func (h *harness) waitReceived(want []byte) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Equal(h.agent.received(), want) {
		if time.Now().After(deadline) {
			h.t.Fatalf("the agent received %v, want %v", h.agent.received(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed reads until c closes and returns the close status and reason.
func waitClosed(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the stream ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

func TestBridgeViewOnlyAcrossFrames(t *testing.T) {
	h := newHarness(t)
	u := h.url(`{"view_only":true}`)
	if !u.ViewOnly || !strings.Contains(u.URL, "/view/"+sbxA+"/") || !strings.HasSuffix(u.WebSocketURL, "?mode=view") {
		t.Fatalf("URL %+v", u)
	}
	c := h.dial(u)
	defer c.CloseNow()
	ctx := context.Background()
	// Messages cut across frames, input among them.
	stream := cat(hello, pointer, updateReq, keyDown, encodings)
	for _, cut := range [][]byte{stream[:5], stream[5:14], stream[14:17], stream[17:30], stream[30:]} {
		if err := c.Write(ctx, websocket.MessageBinary, cut); err != nil {
			t.Fatal(err)
		}
	}
	h.waitReceived(cat(helloShared, updateReq, encodings))
	c.Close(websocket.StatusNormalClosure, "")
}

func TestBridgeEnds(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		send   []byte
		act    func(h *harness, u apitype.StreamURL)
		code   websocket.StatusCode
		reason string
	}{
		{name: "revoked", act: func(h *harness, u apitype.StreamURL) {
			if st := h.call("DELETE", "/v1/sandboxes/"+sbxA+"/stream/"+u.TokenID, "", nil); st != 204 {
				t.Fatalf("revoke: %d", st)
			}
		}, code: 4001, reason: "token_revoked: "},
		{name: "all revoked", act: func(h *harness, u apitype.StreamURL) {
			if st := h.call("DELETE", "/v1/sandboxes/"+sbxA+"/stream", "", nil); st != 204 {
				t.Fatalf("revoke all: %d", st)
			}
		}, code: 4001, reason: "token_revoked: "},
		{name: "sandbox stopped", act: func(h *harness, u apitype.StreamURL) { h.sb.setDown(true) }, code: 4000, reason: "sandbox_gone: "},
		{name: "expired", body: `{"ttl_s":1}`, code: 4002, reason: "token_expired: "},
		{name: "unknown message", send: cat(hello, []byte{7, 0, 0, 0}), code: 4003,
			reason: "rfb_protocol_error: rfb: unknown client message type 7"},
		{name: "server stops", act: func(h *harness, u apitype.StreamURL) { go h.svc.Close() }, code: websocket.StatusGoingAway, reason: "server_stopping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			u := h.url(tt.body)
			c := h.dial(u)
			defer c.CloseNow()
			if tt.send != nil {
				c.Write(context.Background(), websocket.MessageBinary, tt.send)
			}
			if tt.act != nil {
				tt.act(h, u)
			}
			code, reason := waitClosed(t, c)
			if code != tt.code || !strings.HasPrefix(reason, tt.reason) {
				t.Errorf("closed with %d %q, want %d %q...", code, reason, tt.code, tt.reason)
			}
			deadline := time.Now().Add(5 * time.Second)
			for h.svc.Streams(sbxA) != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := h.svc.Streams(sbxA); n != 0 {
				t.Errorf("%d streams still open", n)
			}
		})
	}
}

func TestBridgeRefusals(t *testing.T) {
	h := newHarness(t)
	view := h.url(`{"view_only":true}`)
	control := h.url(`{}`)
	if st := h.call("DELETE", "/v1/sandboxes/"+sbxA+"/stream/"+control.TokenID, "", nil); st != 204 {
		t.Fatalf("revoke: %d", st)
	}
	ws := func(u apitype.StreamURL) string { return strings.Replace(u.WebSocketURL, "ws://", "http://", 1) }
	tests := []struct {
		name, url string
		status    int
		reason    string
	}{
		{"revoked", ws(control), 401, ReasonTokenRevoked},
		{"wrong mode", strings.Replace(ws(view), "mode=view", "mode=control", 1), 401, ReasonWrongMode},
		{"wrong sandbox", strings.Replace(ws(view), sbxA, sbxB, 1), 401, ReasonWrongSandbox},
		{"tampered", strings.Replace(ws(view), "/rfb", "x/rfb", 1), 401, ReasonTokenInvalid},
		{"page of a revoked URL", strings.Split(control.URL, "?")[0], 401, ""},
		{"no such path", h.srv.URL + "/view/" + sbxA, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body tokenErrorBody
			b, _ := io.ReadAll(resp.Body)
			json.Unmarshal(b, &body)
			if resp.StatusCode != tt.status || body.Error.Reason != tt.reason && tt.reason != "" {
				t.Errorf("%d %s, want %d reason %q", resp.StatusCode, b, tt.status, tt.reason)
			}
		})
	}
	t.Run("page", func(t *testing.T) {
		resp, err := http.Get(view.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`data-mode="view"`)) || !bytes.Contains(b, []byte(`/view/novnc/core/rfb.js`)) {
			t.Errorf("page: %d\n%s", resp.StatusCode, b)
		}
		// Only the page's own script and style run: they carry the nonce
		// of this response's policy, which no other response shares.
		csp := resp.Header.Get("Content-Security-Policy")
		m := regexp.MustCompile(`script-src 'self' 'nonce-([A-Za-z0-9_-]{22})'`).FindStringSubmatch(csp)
		if m == nil || !strings.Contains(csp, "default-src 'none'") {
			t.Fatalf("Content-Security-Policy %q, want default-src 'none' and a script nonce", csp)
		}
		for _, tag := range []string{`<script type="module" nonce="` + m[1] + `">`, `<style nonce="` + m[1] + `">`} {
			if !bytes.Contains(b, []byte(tag)) {
				t.Errorf("page has no %s", tag)
			}
		}
		if bytes.Contains(b, []byte(` style="`)) {
			t.Errorf("page has an inline style attribute, which its policy blocks")
		}
		again, err := http.Get(view.URL)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if again.Header.Get("Content-Security-Policy") == csp {
			t.Errorf("two responses share the nonce of %q", csp)
		}
	})
	t.Run("paused sandbox", func(t *testing.T) {
		h.sb.setDown(true)
		defer h.sb.setDown(false)
		var e tokenErrorBody
		if st := h.call("POST", "/v1/sandboxes/"+sbxA+"/stream", "", &e); st != 409 || e.Error.Code != desktop.CodeConflict {
			t.Errorf("URL of a paused sandbox: %d %+v", st, e)
		}
	})
	t.Run("bad request", func(t *testing.T) {
		for _, body := range []string{`{"resize":"zoom"}`, `{"ttl_s":-1}`, `{"ttl_s":999999}`, `{"view":true}`} {
			var e tokenErrorBody
			if st := h.call("POST", "/v1/sandboxes/"+sbxA+"/stream", body, &e); st != 400 {
				t.Errorf("%s: %d %+v, want 400", body, st, e)
			}
		}
	})
	t.Run("other owner", func(t *testing.T) {
		req, _ := http.NewRequest("POST", h.srv.URL+"/v1/sandboxes/"+sbxB+"/stream", nil)
		req.Header.Set("Authorization", "Bearer alice-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("another's sandbox: %d, want 404", resp.StatusCode)
		}
	})
}
