package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// AgentPort is the port of the agent inside every sandbox (E2B's envd port).
const AgentPort = 49983

// IDLen is the length of a sandbox id: 20 characters of [a-z0-9], so an id
// never holds the '-' and '.' that the Host form splits on.
const IDLen = 20

// Header names of E2B's shared-host routing.
const (
	HeaderSandboxID   = "E2b-Sandbox-Id"
	HeaderSandboxPort = "E2b-Sandbox-Port"
)

// route is where a request goes inside a sandbox.
type route struct {
	id   string
	port int
	// rewrite is set for the path form: the forwarded path is path (and
	// rawPath, its escaped form), not the request's own.
	rewrite       bool
	path, rawPath string
	// cookiePath scopes the token cookie: "/" for a host of its own,
	// "/sandboxes/<id>/" for the path form on the server's host.
	cookiePath string
}

// Match reports which sandbox and port r is meant for. It tries, in order:
// the Host <port>-<id>.<Domain>; the E2b-Sandbox-Id header with
// E2b-Sandbox-Port (default 49983); the path /sandboxes/<id>/agent/<rest>
// (port 49983) or /sandboxes/<id>/port/<port>/<rest>. ok is false when r
// names no sandbox or names it with an id or port that is not valid.
func (p *Proxy) Match(r *http.Request) (id string, port int, ok bool) {
	rt, ok := p.match(r)
	return rt.id, rt.port, ok
}

func (p *Proxy) match(r *http.Request) (route, bool) {
	if rt, ok := matchHost(r.Host, p.cfg.Domain); ok {
		return rt, true
	}
	if vals, present := r.Header[HeaderSandboxID]; present {
		return matchHeader(vals, r.Header.Values(HeaderSandboxPort))
	}
	if r.URL == nil {
		return route{}, false
	}
	return matchPath(r.URL.EscapedPath())
}

// matchHost parses host as <port>-<id>.<domain>: split on the first '.',
// then on the first '-'.
func matchHost(host, domain string) (route, bool) {
	if domain == "" {
		return route{}, false
	}
	host = strings.ToLower(hostOnly(host))
	host = strings.TrimSuffix(host, ".")
	label, rest, found := strings.Cut(host, ".")
	if !found || rest != domain {
		return route{}, false
	}
	portStr, id, found := strings.Cut(label, "-")
	if !found || !ValidID(id) {
		return route{}, false
	}
	port, ok := parsePort(portStr)
	if !ok {
		return route{}, false
	}
	return route{id: id, port: port, cookiePath: "/"}, true
}

// matchHeader routes by E2b-Sandbox-Id and E2b-Sandbox-Port. Each header
// must appear at most once.
func matchHeader(ids, ports []string) (route, bool) {
	if len(ids) != 1 || !ValidID(ids[0]) || len(ports) > 1 {
		return route{}, false
	}
	port := AgentPort
	if len(ports) == 1 && ports[0] != "" {
		var ok bool
		if port, ok = parsePort(ports[0]); !ok {
			return route{}, false
		}
	}
	return route{id: ids[0], port: port, cookiePath: "/"}, true
}

// matchPath parses the escaped path /sandboxes/<id>/agent[/<rest>] or
// /sandboxes/<id>/port/<port>[/<rest>].
func matchPath(escaped string) (route, bool) {
	rest, found := strings.CutPrefix(escaped, "/sandboxes/")
	if !found {
		return route{}, false
	}
	id, rest, found := strings.Cut(rest, "/")
	if !found || !ValidID(id) {
		return route{}, false
	}
	var port int
	var tail string
	switch {
	case rest == "agent" || strings.HasPrefix(rest, "agent/"):
		port, tail = AgentPort, rest[len("agent"):]
	case strings.HasPrefix(rest, "port/"):
		portStr, after, hasTail := strings.Cut(rest[len("port/"):], "/")
		var ok bool
		if port, ok = parsePort(portStr); !ok {
			return route{}, false
		}
		if hasTail {
			tail = "/" + after
		}
	default:
		return route{}, false
	}
	if tail == "" {
		tail = "/"
	}
	path, err := url.PathUnescape(tail)
	if err != nil {
		return route{}, false
	}
	rt := route{id: id, port: port, rewrite: true, path: path, cookiePath: "/sandboxes/" + id + "/"}
	if path != tail {
		rt.rawPath = tail
	}
	return rt, true
}

// ValidID reports whether s has the shape of a sandbox id: IDLen characters
// of [a-z0-9].
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// parsePort parses a port in canonical decimal form (no sign, no leading
// zero) in 1..65535.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, false
	}
	return n, true
}

// hostOnly drops the port from a Host header value, and the brackets from an
// IPv6 literal.
func hostOnly(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i > strings.LastIndexByte(host, ']') {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// validDomain checks that d is a DNS name of at least two labels of
// [a-z0-9-] (any case), optionally with a trailing dot: no wildcard, no IP
// address, no port.
func validDomain(d string) error {
	d = strings.TrimSuffix(d, ".")
	if len(d) > 253 {
		return fmt.Errorf("domain %q is longer than 253 characters: %w", d, desktop.ErrInvalid)
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("domain %q needs at least two labels, e.g. sandbox.example.com: %w", d, desktop.ErrInvalid)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("domain %q has an invalid label %q: %w", d, l, desktop.ErrInvalid)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("domain %q has an invalid character %q: %w", d, l[i], desktop.ErrInvalid)
			}
		}
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return fmt.Errorf("domain %q is an IP address, not a name: %w", d, desktop.ErrInvalid)
	}
	return nil
}
