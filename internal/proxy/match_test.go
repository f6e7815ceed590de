package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func matchProxy(t testing.TB) *Proxy {
	p, err := New(Config{
		Domain:  "Sandbox.Test.", // normalised by New
		Resolve: func(context.Context, string) (Target, error) { return Target{}, nil },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestMatch(t *testing.T) {
	p := matchProxy(t)
	cases := []struct {
		name     string
		host     string
		header   map[string][]string
		path     string
		wantID   string
		wantPort int
		wantPath string // forwarded path; empty: the request's own
	}{
		{name: "host", host: "49983-" + idA + ".sandbox.test", path: "/x", wantID: idA, wantPort: 49983},
		{name: "host with port", host: "6080-" + idA + ".sandbox.test:8443", wantID: idA, wantPort: 6080},
		{name: "host upper-case", host: "6080-" + strings.ToUpper(idA) + ".SANDBOX.TEST", wantID: idA, wantPort: 6080},
		{name: "host trailing dot", host: "1-" + idA + ".sandbox.test.", wantID: idA, wantPort: 1},
		{name: "host max port", host: "65535-" + idA + ".sandbox.test", wantID: idA, wantPort: 65535},
		{name: "host port 0", host: "0-" + idA + ".sandbox.test"},
		{name: "host port too big", host: "65536-" + idA + ".sandbox.test"},
		{name: "host leading zero", host: "049983-" + idA + ".sandbox.test"},
		{name: "host signed port", host: "+80-" + idA + ".sandbox.test"},
		{name: "host short id", host: "80-" + idA[:19] + ".sandbox.test"},
		{name: "host long id", host: "80-" + idA + "x.sandbox.test"},
		{name: "host id with dash", host: "80-" + idA[:19] + "-.sandbox.test"},
		{name: "host other domain", host: "80-" + idA + ".example.com"},
		{name: "host deeper domain", host: "80-" + idA + ".x.sandbox.test"},
		{name: "host bare domain", host: "sandbox.test"},
		{name: "host wins over header", host: "80-" + idA + ".sandbox.test",
			header: map[string][]string{HeaderSandboxID: {idB}}, wantID: idA, wantPort: 80},
		{name: "header localhost", host: "localhost:3000", header: map[string][]string{HeaderSandboxID: {idB}},
			wantID: idB, wantPort: AgentPort},
		{name: "header ipv6", host: "[::1]:3000", header: map[string][]string{HeaderSandboxID: {idB}, HeaderSandboxPort: {"6080"}},
			wantID: idB, wantPort: 6080},
		{name: "header sandbox.domain", host: "sandbox.sandbox.test",
			header: map[string][]string{HeaderSandboxID: {idB}, HeaderSandboxPort: {"49983"}}, wantID: idB, wantPort: 49983},
		{name: "header bad id", header: map[string][]string{HeaderSandboxID: {"debug_sandbox_id"}}},
		{name: "header bad port", header: map[string][]string{HeaderSandboxID: {idB}, HeaderSandboxPort: {"http"}}},
		{name: "header twice", header: map[string][]string{HeaderSandboxID: {idA, idB}}},
		{name: "header wins over path", header: map[string][]string{HeaderSandboxID: {idB}},
			path: "/sandboxes/" + idA + "/agent/x", wantID: idB, wantPort: AgentPort},
		{name: "path agent", path: "/sandboxes/" + idA + "/agent/v1/actions", wantID: idA, wantPort: AgentPort, wantPath: "/v1/actions"},
		{name: "path agent bare", path: "/sandboxes/" + idA + "/agent", wantID: idA, wantPort: AgentPort, wantPath: "/"},
		{name: "path port", path: "/sandboxes/" + idA + "/port/6080/vnc.html", wantID: idA, wantPort: 6080, wantPath: "/vnc.html"},
		{name: "path port bare", path: "/sandboxes/" + idA + "/port/6080", wantID: idA, wantPort: 6080, wantPath: "/"},
		{name: "path port 0", path: "/sandboxes/" + idA + "/port/0/x"},
		{name: "path agentx", path: "/sandboxes/" + idA + "/agentx/y"},
		{name: "path no kind", path: "/sandboxes/" + idA},
		{name: "path bad id", path: "/sandboxes/../agent/x"},
		{name: "api path", path: "/v1/sandboxes/" + idA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/"
			}
			r := &http.Request{Method: "GET", Host: tc.host, Header: http.Header(tc.header), URL: &url.URL{Path: path}}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			id, port, ok := p.Match(r)
			if wantOK := tc.wantID != ""; ok != wantOK || id != tc.wantID || port != tc.wantPort {
				t.Fatalf("Match = %q, %d, %v; want %q, %d, %v", id, port, ok, tc.wantID, tc.wantPort, wantOK)
			}
			rt, _ := p.match(r)
			if tc.wantPath != "" && (!rt.rewrite || rt.path != tc.wantPath) {
				t.Errorf("forwarded path = %q (rewrite %v), want %q", rt.path, rt.rewrite, tc.wantPath)
			}
			if tc.wantPath == "" && rt.rewrite {
				t.Errorf("path rewritten to %q, want the request's own", rt.path)
			}
		})
	}
}

func TestMatchNoDomain(t *testing.T) {
	p, err := New(Config{Resolve: func(context.Context, string) (Target, error) { return Target{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	r := &http.Request{Host: "49983-" + idA + ".anything.test", Header: http.Header{}, URL: &url.URL{Path: "/"}}
	if id, port, ok := p.Match(r); ok {
		t.Errorf("Match = %q, %d, true with no Domain, want no Host routing", id, port)
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("49983-"+idA+".sandbox.test", "", "", "/v1/ready")
	f.Add("localhost:8080", idB, "6080", "/")
	f.Add("", "", "", "/sandboxes/"+idA+"/port/6080/a%2Fb")
	f.Add("[::1]", idA, "", "/sandboxes/"+idA+"/agent")
	f.Add("-.", "", "0", "/sandboxes//agent/")
	p := matchProxy(f)
	f.Fuzz(func(t *testing.T, host, hdrID, hdrPort, rawPath string) {
		u, err := url.Parse(rawPath)
		if err != nil {
			u = &url.URL{Path: rawPath}
		}
		r := &http.Request{Method: "GET", Host: host, Header: http.Header{}, URL: u}
		if hdrID != "" {
			r.Header.Set(HeaderSandboxID, hdrID)
		}
		if hdrPort != "" {
			r.Header.Set(HeaderSandboxPort, hdrPort)
		}
		id, port, ok := p.Match(r)
		if !ok {
			if id != "" || port != 0 {
				t.Errorf("no match but id %q port %d", id, port)
			}
			return
		}
		if !ValidID(id) {
			t.Errorf("Match gave invalid id %q", id)
		}
		if port < 1 || port > 65535 {
			t.Errorf("Match gave port %d", port)
		}
		rt, _ := p.match(r)
		if rt.id != id || rt.port != port {
			t.Errorf("match and Match disagree: %+v vs %q %d", rt, id, port)
		}
		if rt.rewrite && !strings.HasPrefix(rt.path, "/") {
			t.Errorf("forwarded path %q does not start with /", rt.path)
		}
		if !strings.HasPrefix(rt.cookiePath, "/") {
			t.Errorf("cookie path %q does not start with /", rt.cookiePath)
		}
		// The id must come from where the request put it.
		if !strings.Contains(strings.ToLower(host), id) && hdrID != id && !strings.Contains(u.EscapedPath(), id) {
			t.Errorf("id %q appears nowhere in host %q, header %q, path %q", id, host, hdrID, u.EscapedPath())
		}
	})
}

func FuzzStripQueryToken(f *testing.F) {
	f.Add("a=1&access_token=x&b=2")
	f.Add("access%5Ftoken=x")
	f.Add("access_token")
	f.Fuzz(func(t *testing.T, raw string) {
		out := stripQueryToken(raw)
		q, _ := url.ParseQuery(out)
		if len(q[QueryToken]) != 0 {
			t.Errorf("stripQueryToken(%q) = %q still has %s", raw, out, QueryToken)
		}
		if len(out) > len(raw) {
			t.Errorf("stripQueryToken(%q) = %q grew", raw, out)
		}
	})
}
