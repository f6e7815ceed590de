package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cubicle-dev/cubicle/desktop"
)

const (
	idPub       = "u0u0u0u0u0u0u0u0u0u0"
	idPubPaused = "v0v0v0v0v0v0v0v0v0v0"
	idPubDead   = "w0w0w0w0w0w0w0w0w0w0"
	tokenPub    = "tok_u_0123456789abcdef0123456789"
)

// publicWorld has sandbox A, whose ports all ask for the token, and the
// sandbox idPub, whose ports other than the agent's are public; both serve
// the agent port and the VNC port. idPubPaused and idPubDead are public
// too: one paused, one where nothing listens.
func publicWorld(t *testing.T) *world {
	w := newWorld(t, nil)
	w.addBox(idA, tokenA, StateRunning, "127.0.0.1", AgentPort, portVNC)
	w.addBox(idPub, tokenPub, StateRunning, "127.0.0.2", AgentPort, portVNC)
	w.addBox(idPubPaused, tokenPub, "paused", "127.0.0.2", AgentPort, portVNC)
	w.addBox(idPubDead, tokenPub, StateRunning, "127.0.0.2")
	for _, id := range []string{idPub, idPubPaused, idPubDead} {
		w.setPublicPorts(id, true)
	}
	return w
}

// presentation is one way of presenting a token for sandbox id.
type presentation struct {
	name string
	set  func(r *http.Request, id, token string)
}

var presentations = []presentation{
	{"x-access-token", func(r *http.Request, _, tok string) { r.Header.Set("X-Access-Token", tok) }},
	{"e2b-traffic-access-token", func(r *http.Request, _, tok string) { r.Header.Set(HeaderTrafficToken, tok) }},
	{"e2b-traffic-access-token lower-case", func(r *http.Request, _, tok string) {
		r.Header["e2b-traffic-access-token"] = []string{tok} // sent as written
	}},
	{"bearer", func(r *http.Request, _, tok string) { r.Header.Set("Authorization", "Bearer "+tok) }},
	{"query", func(r *http.Request, _, tok string) { r.URL.RawQuery = "x=1&access_token=" + tok }},
	{"cookie", func(r *http.Request, id, tok string) { r.AddCookie(&http.Cookie{Name: CookiePrefix + id, Value: tok}) }},
}

func TestPublicPorts(t *testing.T) {
	w := publicWorld(t)
	boxes := []struct {
		name   string
		id     string
		token  string
		public bool
	}{{"not public", idA, tokenA, false}, {"public", idPub, tokenPub, true}}
	forms := []struct {
		name  string
		build func(id string, port int) *http.Request
	}{
		{"host", func(id string, port int) *http.Request {
			return w.newRequest("GET", strconv.Itoa(port)+"-"+id+"."+testDomain, "/check", nil)
		}},
		{"path", func(id string, port int) *http.Request {
			return w.newRequest("GET", "", "/sandboxes/"+id+"/port/"+strconv.Itoa(port)+"/check", nil)
		}},
	}
	type way struct {
		kind  string // "none", "wrong" or "right"
		pres  presentation
		token string
	}
	for _, b := range boxes {
		ways := []way{{kind: "none"}}
		for _, p := range presentations {
			ways = append(ways, way{"wrong", p, tokenOther}, way{"right", p, b.token})
		}
		for _, port := range []int{AgentPort, portVNC} {
			for _, f := range forms {
				for _, wy := range ways {
					name := b.name + "/" + strconv.Itoa(port) + "/" + f.name + "/" + wy.kind
					if wy.pres.name != "" {
						name += " " + wy.pres.name
					}
					t.Run(name, func(t *testing.T) {
						req := f.build(b.id, port)
						if wy.pres.set != nil {
							wy.pres.set(req, b.id, wy.token)
						}
						want := http.StatusUnauthorized
						if wy.kind == "right" || (b.public && port != AgentPort) {
							want = http.StatusOK
						}
						status, s, e := w.do(req)
						if status != want {
							t.Fatalf("status = %d (%+v), want %d", status, e.Error, want)
						}
						if status != http.StatusOK {
							if e.Error.Code != desktop.CodeUnauthorized || e.Error.Message == "" {
								t.Errorf("error = %+v, want code %s and a message", e.Error, desktop.CodeUnauthorized)
							}
							return
						}
						if s.Box != b.id || s.Path != "/check" {
							t.Errorf("reached box %q path %q, want %q /check", s.Box, s.Path, b.id)
						}
						wantToken := ""
						if port == AgentPort {
							wantToken = b.token
						}
						if s.Token != wantToken {
							t.Errorf("forwarded X-Access-Token = %q, want %q", s.Token, wantToken)
						}
						// Nothing else the service sees holds the token or a
						// credential meant for the proxy.
						s.Token = ""
						raw, _ := json.Marshal(s)
						if strings.Contains(string(raw), b.token) {
							t.Errorf("the service saw the sandbox's token: %s", raw)
						}
						if s.Traffic != "" || strings.Contains(s.RawQuery, QueryToken) || strings.Contains(s.Cookie, CookiePrefix) {
							t.Errorf("the service saw a proxy credential: traffic %q query %q cookie %q", s.Traffic, s.RawQuery, s.Cookie)
						}
					})
				}
			}
		}
	}
}

// TestPublicPortsKeepServiceAuth checks that the Authorization of the
// service behind a port passes, while a bearer carrying the sandbox's
// token does not.
func TestPublicPortsKeepServiceAuth(t *testing.T) {
	w := publicWorld(t)
	for _, tc := range []struct {
		name, id, token string
	}{{"public", idPub, tokenPub}, {"not public", idA, tokenA}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, auth := range []string{"Basic dXNlcjpwdw==", "Bearer app-token"} {
				req := w.newRequest("GET", "6080-"+tc.id+"."+testDomain, "/check", nil)
				req.Header.Set(HeaderTrafficToken, tc.token)
				req.Header.Set("Authorization", auth)
				status, s, e := w.do(req)
				if status != http.StatusOK {
					t.Fatalf("status = %d (%+v), want 200", status, e.Error)
				}
				if s.Auth != auth || s.Token != "" || s.Traffic != "" {
					t.Errorf("service saw Authorization %q, token %q, traffic token %q; want %q and no tokens", s.Auth, s.Token, s.Traffic, auth)
				}
			}
		})
	}
}

func TestPublicPortsNoCookie(t *testing.T) {
	w := publicWorld(t)
	for _, tc := range []struct {
		name, id, token string
		wantCookie      bool
	}{{"public", idPub, tokenPub, false}, {"not public", idA, tokenA, true}} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := w.front.Client().Do(w.newRequest("GET", "6080-"+tc.id+"."+testDomain, "/vnc.html?access_token="+tc.token, nil))
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			if got := len(res.Cookies()) > 0; got != tc.wantCookie {
				t.Errorf("Set-Cookie %q, want a token cookie: %v", res.Header.Values("Set-Cookie"), tc.wantCookie)
			}
		})
	}
}

// TestPublicPortsOtherChecks checks that public ports change who may pass
// and nothing else.
func TestPublicPortsOtherChecks(t *testing.T) {
	w := publicWorld(t)
	cases := []struct {
		name       string
		host       string
		token      string
		wantStatus int
		wantCode   string
	}{
		{"agent port without token", "49983-" + idPub, "", http.StatusUnauthorized, desktop.CodeUnauthorized},
		{"agent port wrong token", "49983-" + idPub, tokenA, http.StatusUnauthorized, desktop.CodeUnauthorized},
		{"unknown id", "6080-" + idUnknown, "", http.StatusNotFound, desktop.CodeNotFound},
		{"paused", "6080-" + idPubPaused, "", http.StatusBadGateway, desktop.CodeUnavailable},
		{"nothing listens", "6080-" + idPubDead, "", http.StatusBadGateway, desktop.CodeUnavailable},
		{"not public, no token", "6080-" + idA, "", http.StatusUnauthorized, desktop.CodeUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := w.newRequest("GET", tc.host+"."+testDomain, "/check", nil)
			if tc.token != "" {
				req.Header.Set("X-Access-Token", tc.token)
			}
			status, _, e := w.do(req)
			if status != tc.wantStatus || e.Error.Code != tc.wantCode {
				t.Errorf("status %d code %q (%s), want %d %s", status, e.Error.Code, e.Error.Message, tc.wantStatus, tc.wantCode)
			}
		})
	}
	req := w.newRequest("GET", "6080-"+idA+"."+testDomain, "/check", nil)
	_, _, e := w.do(req)
	if !strings.Contains(e.Error.Message, HeaderTrafficToken) {
		t.Errorf("message %q does not name the %s header", e.Error.Message, HeaderTrafficToken)
	}
}

// TestPublicPortCutOnClose checks that a connection to a public port,
// made without a token, is cut when the sandbox stops.
func TestPublicPortCutOnClose(t *testing.T) {
	w := publicWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(w.front.URL, "http") + "/sandboxes/" + idPub + "/port/6080/ws"
	c, res, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	defer c.CloseNow()
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("dial: status %d", res.StatusCode)
	}
	if got, err := echo(ctx, c, "ping"); err != nil || got != idPub+":ping" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	w.setState(idPub, "killed")
	w.proxy.CloseSandbox(idPub)
	if _, _, err := c.Read(ctx); err == nil || ctx.Err() != nil {
		t.Errorf("read after CloseSandbox: err %v (ctx %v), want the connection cut", err, ctx.Err())
	}
	waitFor(t, w.boxes[idPub].rec.finished, "the service to see the cut")
	status, _, e := w.do(w.newRequest("GET", "6080-"+idPub+"."+testDomain, "/check", nil))
	if status != http.StatusBadGateway {
		t.Errorf("after the kill: status %d (%+v), want 502", status, e.Error)
	}
}
