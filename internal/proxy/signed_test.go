package proxy

import (
	"net/http"
	"strconv"
	"testing"
)

// TestSignedFiles checks that a signed /files URL reaches the agent
// without a token, and without the token being added, while everything
// else on the agent still asks for it.
func TestSignedFiles(t *testing.T) {
	w := newWorld(t, nil)
	w.addBox(idA, tokenA, StateRunning, "127.0.0.1", AgentPort, portVNC)
	w.addBox(idPaused, tokenA, "paused", "127.0.0.1", AgentPort)
	host := func(id string, port int) string { return strconv.Itoa(port) + "-" + id + "." + testDomain }
	const sig = "path=%2Ftmp%2Fa.txt&signature=v1_abc"
	tests := []struct {
		name      string
		method    string
		host      string
		path      string
		header    http.Header
		want      int
		wantToken string // the X-Access-Token the agent sees
	}{
		{name: "download on the sandbox host", method: "GET", host: host(idA, AgentPort), path: "/files?" + sig, want: 200},
		{name: "upload on the sandbox host", method: "POST", host: host(idA, AgentPort), path: "/files?" + sig, want: 200},
		{name: "by header", method: "GET", path: "/files?" + sig,
			header: http.Header{HeaderSandboxID: {idA}}, want: 200},
		{name: "path form", method: "GET", path: "/sandboxes/" + idA + "/agent/files?" + sig, want: 200},
		{name: "with the token too", method: "GET", host: host(idA, AgentPort), path: "/files?" + sig,
			header: http.Header{"X-Access-Token": {tokenA}}, want: 200, wantToken: tokenA},
		{name: "with a wrong token", method: "GET", host: host(idA, AgentPort), path: "/files?" + sig,
			header: http.Header{"X-Access-Token": {tokenOther}}, want: 401},
		{name: "unsigned", method: "GET", host: host(idA, AgentPort), path: "/files?path=%2Ftmp%2Fa.txt", want: 401},
		{name: "empty signature", method: "GET", host: host(idA, AgentPort), path: "/files?path=x&signature=", want: 401},
		{name: "another agent path", method: "POST", host: host(idA, AgentPort), path: "/process.Process/List?" + sig, want: 401},
		{name: "a path under files", method: "GET", host: host(idA, AgentPort), path: "/files/x?" + sig, want: 401},
		{name: "delete", method: "DELETE", host: host(idA, AgentPort), path: "/files?" + sig, want: 401},
		{name: "another port", method: "GET", host: host(idA, portVNC), path: "/files?" + sig, want: 401},
		{name: "unknown sandbox", method: "GET", host: host(idUnknown, AgentPort), path: "/files?" + sig, want: 404},
		{name: "paused sandbox", method: "GET", host: host(idPaused, AgentPort), path: "/files?" + sig, want: 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := w.newRequest(tt.method, tt.host, tt.path, nil)
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			status, s, e := w.do(req)
			if status != tt.want {
				t.Fatalf("status = %d (%+v), want %d", status, e.Error, tt.want)
			}
			if status != http.StatusOK {
				return
			}
			if s.Box != idA || s.Path != "/files" || s.RawQuery != sig {
				t.Errorf("agent saw box %q path %q query %q, want %q /files %q", s.Box, s.Path, s.RawQuery, idA, sig)
			}
			if s.Token != tt.wantToken {
				t.Errorf("agent saw X-Access-Token %q, want %q", s.Token, tt.wantToken)
			}
		})
	}
}
