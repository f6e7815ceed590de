package server

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/e2bapi"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// ServeHTTP sends requests into sandboxes to the proxy and the rest to the
// APIs (faces.go). A request goes into a sandbox when it carries
// E2b-Sandbox-Id, when its Host is "<port>-<id>.<Domain>", or when its
// path is /sandboxes/<id>/agent/... or /sandboxes/<id>/port/<port>/...;
// E2B's control plane has the other paths under /sandboxes/. So GET
// /health is envd's with E2b-Sandbox-Id and the server's without. A
// signed /files URL on the server's own host goes to the sandbox whose
// token signed it (signed.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.intoSandbox(r) {
		if !s.serveSignedFiles(w, r) {
			s.mux.ServeHTTP(w, r)
		}
		return
	}
	s.intoProxy(w, r)
}

// intoProxy hands r, which names a sandbox, to the proxy.
func (s *Server) intoProxy(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.e2bTarget(r); ok {
		if _, running := s.manager.Route(id); !running {
			// E2B's edge answers 502 for a sandbox that is gone or not
			// running; the SDK's isRunning() reads it as false.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			json.NewEncoder(w).Encode(e2bapi.Error{Code: http.StatusBadGateway,
				Message: "sandbox " + id + " is not running: it was killed, timed out, is paused or never existed"})
			return
		}
	}
	if s.proxy == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]*desktop.Error{"error": desktop.Errorf(desktop.CodeUnavailable,
			"this server has no proxy into sandboxes")})
		return
	}
	s.proxy.ServeHTTP(w, r)
}

func (s *Server) intoSandbox(r *http.Request) bool {
	if r.Header.Get("E2b-Sandbox-Id") != "" {
		return true
	}
	if s.cfg.Domain != "" {
		if _, _, ok := ParseSandboxHost(r.Host, s.cfg.Domain); ok {
			return true
		}
	}
	return proxyPath(r.URL.Path)
}

// proxyPath reports whether path is the proxy's path form,
// /sandboxes/<id>/agent[/...] or /sandboxes/<id>/port/<port>[/...].
func proxyPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/sandboxes/")
	if !ok {
		return false
	}
	_, rest, ok = strings.Cut(rest, "/")
	return ok && (rest == "agent" || strings.HasPrefix(rest, "agent/") || strings.HasPrefix(rest, "port/"))
}

// e2bTarget is the sandbox a request names the ways E2B's SDK does: by
// the E2b-Sandbox-Id header or by the Host <port>-<id>.<Domain>.
func (s *Server) e2bTarget(r *http.Request) (string, bool) {
	if ids := r.Header.Values("E2b-Sandbox-Id"); len(ids) > 0 {
		return ids[0], len(ids) == 1 && sandbox.ValidID(ids[0])
	}
	if s.cfg.Domain != "" {
		if _, id, ok := ParseSandboxHost(r.Host, s.cfg.Domain); ok {
			return id, true
		}
	}
	return "", false
}

// ParseSandboxHost reads a Host of the form "<port>-<id>.<domain>" (with
// or without ":port", any case, with or without a trailing dot) and
// returns the port inside the sandbox and the sandbox id.
func ParseSandboxHost(host, domain string) (port int, id string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	label, ok := strings.CutSuffix(host, "."+domain)
	if !ok || domain == "" {
		return 0, "", false
	}
	p, id, ok := strings.Cut(label, "-")
	if !ok || !sandbox.ValidID(id) || len(p) == 0 || len(p) > 5 || p[0] == '0' {
		return 0, "", false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != p {
		return 0, "", false
	}
	return port, id, true
}

// validDomain reports whether d is a lower-case DNS name.
func validDomain(d string) bool {
	if len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}
