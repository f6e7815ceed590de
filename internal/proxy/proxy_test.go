package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// twoBoxes is a world with sandbox A on 127.0.0.1 and B on 127.0.0.2, both
// serving the agent port and the VNC port, plus a paused and a dead one.
func twoBoxes(t *testing.T) *world {
	w := newWorld(t, nil)
	w.addBox(idA, tokenA, StateRunning, "127.0.0.1", AgentPort, portVNC)
	w.addBox(idB, tokenB, StateRunning, "127.0.0.2", AgentPort, portVNC)
	w.addBox(idPaused, tokenA, "paused", "127.0.0.1", AgentPort)
	w.addBox(idDead, tokenA, StateRunning, "127.0.0.1") // nothing listens
	return w
}

// form is one way of naming sandbox id, port 49983 and the agent path
// /v1/ready in a request.
type form struct {
	name  string
	build func(w *world, id string) *http.Request
}

var forms = []form{
	{"host", func(w *world, id string) *http.Request {
		return w.newRequest("GET", "49983-"+id+"."+testDomain, "/v1/ready", nil)
	}},
	{"host with port", func(w *world, id string) *http.Request {
		return w.newRequest("GET", "49983-"+id+"."+testDomain+":443", "/v1/ready", nil)
	}},
	{"header localhost", func(w *world, id string) *http.Request {
		r := w.newRequest("GET", "localhost:8080", "/v1/ready", nil)
		r.Header.Set(HeaderSandboxID, id)
		r.Header.Set(HeaderSandboxPort, "49983")
		return r
	}},
	{"header IP no port header", func(w *world, id string) *http.Request {
		r := w.newRequest("GET", "", "/v1/ready", nil)
		r.Header.Set(HeaderSandboxID, id)
		return r
	}},
	{"header sandbox.domain", func(w *world, id string) *http.Request {
		r := w.newRequest("GET", "sandbox."+testDomain, "/v1/ready", nil)
		r.Header.Set(HeaderSandboxID, id)
		r.Header.Set(HeaderSandboxPort, "49983")
		return r
	}},
	{"path agent", func(w *world, id string) *http.Request {
		return w.newRequest("GET", "", "/sandboxes/"+id+"/agent/v1/ready", nil)
	}},
	{"path port", func(w *world, id string) *http.Request {
		return w.newRequest("GET", "", "/sandboxes/"+id+"/port/49983/v1/ready", nil)
	}},
}

func TestRoutingAndTokens(t *testing.T) {
	w := twoBoxes(t)
	cases := []struct {
		name       string
		id         string
		token      string // sent as X-Access-Token; empty sends none
		wantStatus int
		wantCode   string
		wantBox    string
	}{
		{"own token", idA, tokenA, http.StatusOK, "", idA},
		{"other box own token", idB, tokenB, http.StatusOK, "", idB},
		{"missing token", idA, "", http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"wrong token", idA, tokenOther, http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"token of A on B", idB, tokenA, http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"token of B on A", idA, tokenB, http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"token prefix", idA, tokenA[:len(tokenA)-1], http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"unknown id", idUnknown, tokenA, http.StatusNotFound, desktop.CodeNotFound, ""},
		{"unknown id no token", idUnknown, "", http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"paused", idPaused, tokenA, http.StatusBadGateway, desktop.CodeUnavailable, ""},
		{"paused wrong token", idPaused, tokenB, http.StatusUnauthorized, desktop.CodeUnauthorized, ""},
		{"dead", idDead, tokenA, http.StatusBadGateway, desktop.CodeUnavailable, ""},
	}
	for _, f := range forms {
		for _, tc := range cases {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				req := f.build(w, tc.id)
				if tc.token != "" {
					req.Header.Set("X-Access-Token", tc.token)
				}
				status, s, e := w.do(req)
				if status != tc.wantStatus {
					t.Fatalf("status = %d (%+v), want %d", status, e.Error, tc.wantStatus)
				}
				if tc.wantCode != "" && e.Error.Code != tc.wantCode {
					t.Errorf("error code = %q, want %q", e.Error.Code, tc.wantCode)
				}
				if tc.wantCode != "" && e.Error.Message == "" {
					t.Errorf("error message is empty")
				}
				if tc.wantBox == "" {
					return
				}
				if s.Box != tc.wantBox || s.Path != "/v1/ready" {
					t.Errorf("reached box %q path %q, want %q /v1/ready", s.Box, s.Path, tc.wantBox)
				}
				if s.Token != tc.token {
					t.Errorf("forwarded X-Access-Token = %q, want %q", s.Token, tc.token)
				}
			})
		}
	}
}

func TestTokenSources(t *testing.T) {
	w := twoBoxes(t)
	host := "49983-" + idA + "." + testDomain
	cases := []struct {
		name       string
		path       string
		set        func(r *http.Request)
		wantStatus int
	}{
		{"x-access-token", "/v1/ready", func(r *http.Request) { r.Header.Set("X-Access-Token", tokenA) }, 200},
		{"bearer", "/v1/ready", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tokenA) }, 200},
		{"bearer lower-case scheme", "/v1/ready", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tokenA) }, 200},
		{"basic is no token", "/v1/ready", func(r *http.Request) { r.Header.Set("Authorization", "Basic cm9vdDo=") }, 401},
		{"query", "/v1/ready?access_token=" + tokenA, func(*http.Request) {}, 200},
		{"cookie", "/v1/ready", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: CookiePrefix + idA, Value: tokenA}) }, 200},
		{"cookie of another id", "/v1/ready", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: CookiePrefix + idB, Value: tokenA}) }, 401},
		{"wrong header, right cookie", "/v1/ready", func(r *http.Request) {
			r.Header.Set("X-Access-Token", tokenOther)
			r.AddCookie(&http.Cookie{Name: CookiePrefix + idA, Value: tokenA})
		}, 200},
		{"stale cookie, right query", "/v1/ready?access_token=" + tokenA, func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: CookiePrefix + idA, Value: tokenOther})
		}, 200},
		{"empty query token", "/v1/ready?access_token=", func(*http.Request) {}, 401},
		{"B's token in query", "/v1/ready?access_token=" + tokenB, func(*http.Request) {}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := w.newRequest("GET", host, tc.path, nil)
			tc.set(req)
			status, s, e := w.do(req)
			if status != tc.wantStatus {
				t.Fatalf("status = %d (%+v), want %d", status, e.Error, tc.wantStatus)
			}
			if status == 200 && s.Token != tokenA {
				t.Errorf("forwarded X-Access-Token = %q, want the sandbox's token", s.Token)
			}
		})
	}
}

func TestForwardedRequest(t *testing.T) {
	w := twoBoxes(t)
	req := w.newRequest("POST", "6080-"+idA+"."+testDomain,
		"/a%2Fb/c?x=1&access_token="+tokenA+"&y=%20two+words&access_token=again&z", strings.NewReader("body"))
	req.AddCookie(&http.Cookie{Name: "session", Value: "inner-app"})
	req.AddCookie(&http.Cookie{Name: CookiePrefix + idA, Value: tokenA})
	req.AddCookie(&http.Cookie{Name: CookiePrefix + idB, Value: tokenB})
	req.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
	res, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	reqs := w.boxes[idA].rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("sandbox A saw %d requests, want 1", len(reqs))
	}
	s := reqs[0]
	want := seen{
		Box: idA, Method: "POST", Path: "/a/b/c", RawPath: "/a%2Fb/c",
		RawQuery: "x=1&y=%20two+words&z",
		Host:     "6080-" + idA + "." + testDomain,
		Token:    "", // port 6080 is not the agent: it never gets the token
		Cookie:   "session=inner-app; theme=dark",
		XFF:      "127.0.0.1", XFHost: "6080-" + idA + "." + testDomain, XFProto: "http",
		BodyLen: 4, BodySHA: s.BodySHA,
	}
	if s != want {
		t.Errorf("sandbox saw\n%+v\nwant\n%+v", s, want)
	}
	for _, r := range w.boxes[idB].rec.requests() {
		t.Errorf("sandbox B saw a request meant for A: %+v", r)
	}
}

func TestPathFormRewrite(t *testing.T) {
	w := twoBoxes(t)
	cases := []struct {
		path, wantPath, wantRaw string
	}{
		{"/sandboxes/" + idA + "/agent", "/", ""},
		{"/sandboxes/" + idA + "/agent/", "/", ""},
		{"/sandboxes/" + idA + "/agent/v1/files?path=/x", "/v1/files", ""},
		{"/sandboxes/" + idA + "/agent/v1/a%2Fb", "/v1/a/b", "/v1/a%2Fb"},
		{"/sandboxes/" + idA + "/port/6080", "/", ""},
		{"/sandboxes/" + idA + "/port/6080/vnc.html", "/vnc.html", ""},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			req := w.newRequest("GET", "", tc.path, nil)
			req.Header.Set("X-Access-Token", tokenA)
			status, s, e := w.do(req)
			if status != 200 {
				t.Fatalf("status = %d (%+v), want 200", status, e.Error)
			}
			if s.Path != tc.wantPath || s.RawPath != tc.wantRaw {
				t.Errorf("forwarded path = %q (raw %q), want %q (raw %q)", s.Path, s.RawPath, tc.wantPath, tc.wantRaw)
			}
		})
	}
}

func TestQueryTokenSetsCookie(t *testing.T) {
	w := twoBoxes(t)
	cases := []struct {
		name, host, path, wantCookiePath, followPath string
	}{
		{"host form", "6080-" + idA + "." + testDomain, "/vnc.html?access_token=" + tokenA, "/", "/websockify"},
		{"path form", "", "/sandboxes/" + idA + "/port/6080/vnc.html?access_token=" + tokenA,
			"/sandboxes/" + idA + "/", "/sandboxes/" + idA + "/port/6080/app.js"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := w.front.Client().Do(w.newRequest("GET", tc.host, tc.path, nil))
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			res.Body.Close()
			var got *http.Cookie
			for _, c := range res.Cookies() {
				if c.Name == CookiePrefix+idA {
					got = c
				}
			}
			if got == nil {
				t.Fatalf("no %s cookie in %q", CookiePrefix+idA, res.Header.Values("Set-Cookie"))
			}
			if got.Value != tokenA || got.Path != tc.wantCookiePath || !got.HttpOnly || got.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie = %+v, want value of A's token, path %q, HttpOnly, SameSite=Lax", got, tc.wantCookiePath)
			}

			// The page's next request carries only the cookie.
			next := w.newRequest("GET", tc.host, tc.followPath, nil)
			next.AddCookie(&http.Cookie{Name: got.Name, Value: got.Value})
			res, err = w.front.Client().Do(next)
			if err != nil {
				t.Fatalf("GET with cookie: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("with the cookie: status = %d, want 200", res.StatusCode)
			}
			if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("a request that has the cookie got Set-Cookie %q again", sc)
			}
		})
	}

	// Header clients get no cookie.
	req := w.newRequest("GET", "49983-"+idA+"."+testDomain, "/v1/ready", nil)
	req.Header.Set("X-Access-Token", tokenA)
	res, err := w.front.Client().Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	res.Body.Close()
	if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("a header-token request got Set-Cookie %q", sc)
	}
}

func TestNoRoute(t *testing.T) {
	w := twoBoxes(t)
	for _, path := range []string{"/", "/v1/sandboxes", "/sandboxes/" + idA, "/sandboxes/" + idA + "/other/x", "/sandboxes/TOOSHORT/agent/"} {
		req := w.newRequest("GET", "", path, nil)
		req.Header.Set("X-Access-Token", tokenA)
		status, _, e := w.do(req)
		if status != http.StatusNotFound || e.Error.Code != desktop.CodeNotFound {
			t.Errorf("GET %s: status %d code %q, want 404 not_found", path, status, e.Error.Code)
		}
	}
}

func TestUnreachableSandbox(t *testing.T) {
	hang := hangingPort(t)
	w := newWorld(t, func(c *Config) {
		c.DialTimeout = 500 * time.Millisecond
		c.PortMap = func(string, int) int { return hang }
	})
	w.addBox(idHang, tokenA, StateRunning, "127.0.0.3")
	req := w.newRequest("GET", "49983-"+idHang+"."+testDomain, "/v1/ready", nil)
	req.Header.Set("X-Access-Token", tokenA)
	start := time.Now()
	status, _, e := w.do(req)
	elapsed := time.Since(start)
	if status != http.StatusBadGateway || e.Error.Code != desktop.CodeUnavailable {
		t.Errorf("status %d code %q, want 502 unavailable", status, e.Error.Code)
	}
	if !strings.Contains(e.Error.Message, idHang) {
		t.Errorf("message %q does not name the sandbox", e.Error.Message)
	}
	if elapsed > 3*time.Second { // a hang guard, not a speed measure
		t.Errorf("answer took %v: the dial timeout did not bound it", elapsed)
	}
}

func TestResolveFailure(t *testing.T) {
	w := newWorld(t, func(c *Config) {
		c.Resolve = func(context.Context, string) (Target, error) {
			return Target{}, errors.New("store: database is locked")
		}
	})
	req := w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/v1/ready", nil)
	req.Header.Set("X-Access-Token", tokenA)
	status, _, e := w.do(req)
	if status != http.StatusServiceUnavailable || e.Error.Code != desktop.CodeUnavailable {
		t.Errorf("status %d code %q, want 503 unavailable", status, e.Error.Code)
	}
	if strings.Contains(e.Error.Message, "database") {
		t.Errorf("message %q shows the internal cause", e.Error.Message)
	}
}

func TestClosedProxy(t *testing.T) {
	w := twoBoxes(t)
	w.proxy.Close()
	req := w.newRequest("GET", "", "/sandboxes/"+idA+"/agent/v1/ready", nil)
	req.Header.Set("X-Access-Token", tokenA)
	status, _, e := w.do(req)
	if status != http.StatusServiceUnavailable || e.Error.Code != desktop.CodeUnavailable {
		t.Errorf("status %d code %q, want 503 unavailable", status, e.Error.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	resolve := func(context.Context, string) (Target, error) { return Target{}, nil }
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{Resolve: resolve}, true},
		{"domain", Config{Resolve: resolve, Domain: "Sandbox.Example.COM."}, true},
		{"no resolve", Config{Domain: "a.b"}, false},
		{"negative timeout", Config{Resolve: resolve, DialTimeout: -1}, false},
		{"one label", Config{Resolve: resolve, Domain: "localhost"}, false},
		{"wildcard", Config{Resolve: resolve, Domain: "*.example.com"}, false},
		{"ip", Config{Resolve: resolve, Domain: "10.0.0.1"}, false},
		{"port", Config{Resolve: resolve, Domain: "example.com:443"}, false},
		{"empty label", Config{Resolve: resolve, Domain: "a..b"}, false},
		{"control byte", Config{Resolve: resolve, Domain: "a\x10.b"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("error %v is not desktop.ErrInvalid", err)
			}
		})
	}
}

func TestTargetLogValueHidesToken(t *testing.T) {
	v := Target{Token: tokenA, State: StateRunning}.LogValue().String()
	if strings.Contains(v, tokenA) {
		t.Errorf("LogValue %q shows the token", v)
	}
}
