// Package proxy forwards requests to the services inside sandboxes. A
// sandbox is reachable only through it. Its agent (port 49983, AgentPort)
// always asks for the sandbox's access token; its other ports ask for it
// too, unless the sandbox has public ports (Target.PublicPorts, which is
// E2B's allowPublicTraffic).
//
// A request names its sandbox and port in one of three ways, tried in order
// (see Proxy.Match):
//
//   - Host <port>-<id>.<domain>, as E2B's SDK builds for sandbox hosts and
//     the live-view URL;
//   - the headers E2b-Sandbox-Id and E2b-Sandbox-Port (default 49983), as
//     E2B's SDK sends to a shared sandbox URL;
//   - the path /sandboxes/<id>/agent/<rest> (port 49983, path /<rest>) or
//     /sandboxes/<id>/port/<port>/<rest>.
//
// Who gets through:
//
//   - to port 49983, whoever presents the sandbox's access token, and
//     requests for its /files with a signature (E2B's signed downloadUrl
//     and uploadUrl), which go on without the token for the agent to check
//     the signature;
//   - to any other port of a sandbox with public ports, anyone: no token
//     is asked for and none is checked;
//   - to any other port of a sandbox without, whoever presents the token.
//
// The token is taken from the X-Access-Token header, the
// E2b-Traffic-Access-Token header (E2B's trafficAccessToken, which is the
// access token here), Authorization: Bearer, the access_token query
// parameter or the cookie cubicle_token_<id>. A browser that opens a URL
// of a port that asks for the token with ?access_token= gets that cookie,
// so that the page's own requests and its WebSocket (which cannot carry
// headers) get through too.
//
// Before forwarding, the proxy removes the request's credentials, whatever
// the port: every access_token query parameter, every cubicle_token_*
// cookie, the X-Access-Token and E2b-Traffic-Access-Token headers, and an
// Authorization: Bearer line that carries the sandbox's token (other
// Authorization lines belong to the service and pass). A request to port
// 49983 then gets X-Access-Token set to the sandbox's token, which the
// agent checks again. A request to any other port never carries the token,
// public sandbox or not: those are arbitrary services, not the agent.
//
// Answers, in the order they are decided:
//
//   - 401 unauthorized: a request to port 49983 presents no token at all
//     and is not a signed /files request (the id is not even looked up);
//   - 404 not_found: no sandbox has this id. Ids are not secrets (the token
//     is) and are 20 random characters, so a person holding a stale id is
//     told it is gone;
//   - 401 unauthorized: the port asks for the token and none of the tokens
//     presented is the sandbox's own (or none was), so a token for sandbox
//     A never opens sandbox B;
//   - 502 unavailable: the sandbox is not running, or nothing answers on the
//     port within the dial timeout (no hang);
//   - otherwise whatever the service inside answers, streamed as it comes.
//
// Whatever the port, the connections of a sandbox are cut when it stops
// (CloseSandbox). The Host header is forwarded unchanged (inner web servers
// see the name the client used); X-Forwarded-For, -Host and -Proto are set.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// StateRunning is the only Target.State the proxy forwards to.
const StateRunning = "running"

// DefaultDialTimeout bounds the connect to a sandbox service, so that a dead
// sandbox gets a fast 502.
const DefaultDialTimeout = 2 * time.Second

// Target is what the proxy needs to know about a sandbox.
type Target struct {
	// Addr is the sandbox's IP address on its veth.
	Addr netip.Addr
	// Token is the sandbox's access token. A sandbox with an empty token
	// cannot be reached.
	Token string
	// State is the sandbox's lifecycle state ("running", "paused", ...).
	State string
	// PublicPorts lets anyone reach the sandbox's ports other than
	// AgentPort without a token.
	PublicPorts bool
}

// LogValue keeps the token out of logs.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", t.Addr.String()), slog.String("state", t.State),
		slog.Bool("has_token", t.Token != ""), slog.Bool("public_ports", t.PublicPorts))
}

// Config configures a Proxy.
type Config struct {
	// Domain is the sandbox domain of the Host form <port>-<id>.<Domain>,
	// e.g. "sandbox.example.com". Empty turns the Host form off.
	Domain string
	// Resolve looks a sandbox up by id. It returns an error wrapping
	// desktop.ErrNotFound when there is no such sandbox.
	Resolve func(ctx context.Context, id string) (Target, error)
	// Logger receives the errors the proxy answers with 5xx. Nil discards.
	Logger *slog.Logger
	// DialTimeout bounds the connect to a sandbox service; zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// PortMap, when set, maps the port a request asks for to the port dialled
	// on Target.Addr. Nil dials the port asked for, which is what sandboxes
	// with their own address need; the map serves set-ups where several
	// sandboxes share an address.
	PortMap func(id string, port int) int
}

// Validate reports whether c can make a Proxy.
func (c Config) Validate() error {
	if c.Resolve == nil {
		return fmt.Errorf("proxy: config: Resolve is required: %w", desktop.ErrInvalid)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("proxy: config: DialTimeout %v is negative: %w", c.DialTimeout, desktop.ErrInvalid)
	}
	if c.Domain != "" {
		if err := validDomain(c.Domain); err != nil {
			return fmt.Errorf("proxy: config: Domain: %w", err)
		}
	}
	return nil
}

// Proxy is an http.Handler that forwards to sandbox services. It is safe
// for concurrent use. Close it when the server stops.
type Proxy struct {
	cfg Config
	log *slog.Logger
	rp  *httputil.ReverseProxy

	mu        sync.Mutex
	sandboxes map[string]*sandboxConns
	closed    bool
	// closeGen counts CloseSandbox calls; written under mu.
	closeGen atomic.Uint64
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Domain = strings.TrimSuffix(strings.ToLower(cfg.Domain), ".")
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, sandboxes: make(map[string]*sandboxConns)}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper(p.roundTrip),
		FlushInterval:  -1, // NDJSON and Connect streams flow as they are written
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.forwardError,
		ErrorLog:       slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// forward is what ServeHTTP decided for one request; it rides in the
// request's context to Rewrite, the transport and ModifyResponse.
type forward struct {
	route
	addr      netip.AddrPort
	token     string
	sb        *sandboxConns
	setCookie *http.Cookie
	// signed: the request presents no token but a signed file URL, which
	// the agent checks; it is forwarded without the token.
	signed bool
}

type forwardKey struct{}

func forwardOf(ctx context.Context) *forward {
	f, _ := ctx.Value(forwardKey{}).(*forward)
	return f
}

// ServeHTTP checks the token and forwards r to the sandbox service it names.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := p.match(r)
	if !ok {
		host := ""
		if p.cfg.Domain != "" {
			host = "the Host <port>-<id>." + p.cfg.Domain + ", "
		}
		p.writeError(w, http.StatusNotFound, desktop.Errorf(desktop.CodeNotFound,
			"this request names no sandbox: use %sthe %s header or the path /sandboxes/<id>/agent/...", host, HeaderSandboxID))
		return
	}
	creds := credentialsOf(r, rt.id)
	// A signed file URL carries no token: the agent checks its signature.
	signed := creds.empty() && signedFiles(r, rt)
	if creds.empty() && rt.port == AgentPort && !signed {
		p.writeError(w, http.StatusUnauthorized, missingToken(rt.id))
		return
	}
	f, refusal := p.authorize(r, rt, creds, signed)
	if refusal != nil {
		if r.Context().Err() == nil { // else the client went away
			p.writeError(w, refusal.status, refusal.err)
		}
		return
	}
	// The request body goes on being read after the response has begun:
	// the transport may still be at its end when the first bytes of a
	// stream are flushed back, and some protocols stream both ways. Without
	// this, HTTP/1 closes the body at the first flush and the forwarded
	// request fails half-way.
	http.NewResponseController(w).EnableFullDuplex()
	ctx := context.WithValue(r.Context(), forwardKey{}, f)
	p.rp.ServeHTTP(&trackingWriter{ResponseWriter: w, sb: f.sb}, r.WithContext(ctx))
}

// failure is an answer the proxy gives itself.
type failure struct {
	status int
	err    *desktop.Error
}

func fail(status int, code, format string, args ...any) *failure {
	return &failure{status: status, err: desktop.Errorf(code, format, args...)}
}

// missingToken is the answer to a request that presents no token where
// one is needed.
func missingToken(id string) *desktop.Error {
	return desktop.Errorf(desktop.CodeUnauthorized,
		"missing access token: sandbox %s is secured with its access token; send it in the X-Access-Token or %s header (browsers: ?%s=)",
		id, HeaderTrafficToken, QueryToken)
}

// authorize looks the sandbox up, checks the token and the state, and takes
// the sandbox's connection set. When CloseSandbox runs meanwhile, it looks
// again, so that a request never slips past a kill or pause onto a fresh
// connection.
func (p *Proxy) authorize(r *http.Request, rt route, creds credentials, signed bool) (*forward, *failure) {
	for attempt := 1; ; attempt++ {
		gen := p.closeGen.Load()
		t, err := p.cfg.Resolve(r.Context(), rt.id)
		switch {
		case err == nil:
		case errors.Is(err, desktop.ErrNotFound):
			return nil, fail(http.StatusNotFound, desktop.CodeNotFound,
				"sandbox %s not found: it was killed, timed out or never existed; create a new one", rt.id)
		default:
			if r.Context().Err() == nil {
				p.log.Error("resolve sandbox", "sandbox_id", rt.id, "error", err)
			}
			return nil, fail(http.StatusServiceUnavailable, desktop.CodeUnavailable,
				"sandbox %s cannot be looked up right now; retry", rt.id)
		}
		// Ports other than the agent's are open to all when the sandbox
		// says so; the agent always asks for the token.
		open := (t.PublicPorts && rt.port != AgentPort) || signed
		var viaQuery, viaCookie bool
		if !open {
			if creds.empty() {
				return nil, &failure{status: http.StatusUnauthorized, err: missingToken(rt.id)}
			}
			var authorized bool
			authorized, viaQuery, viaCookie = creds.check(t.Token)
			if !authorized {
				if t.Token == "" {
					p.log.Warn("sandbox has no access token; refusing", "sandbox_id", rt.id)
				}
				return nil, fail(http.StatusUnauthorized, desktop.CodeUnauthorized,
					"wrong access token for sandbox %s: use the access_token returned when it was created or connected", rt.id)
			}
		}
		if t.State != StateRunning {
			return nil, fail(http.StatusBadGateway, desktop.CodeUnavailable, "%s", notRunning(rt.id, t.State))
		}
		port := rt.port
		if p.cfg.PortMap != nil {
			port = p.cfg.PortMap(rt.id, port)
		}
		if !t.Addr.IsValid() || port < 1 || port > 65535 {
			p.log.Error("sandbox has no address to forward to", "sandbox_id", rt.id, "target", t, "port", port)
			return nil, fail(http.StatusBadGateway, desktop.CodeUnavailable,
				"sandbox %s has no network address yet; retry when it is running", rt.id)
		}
		sb, current := p.sandbox(rt.id, gen)
		if sb == nil {
			return nil, fail(http.StatusServiceUnavailable, desktop.CodeUnavailable,
				"the server is shutting down; retry against the new one")
		}
		if !current && attempt < 3 {
			continue
		}
		f := &forward{route: rt, addr: netip.AddrPortFrom(t.Addr.Unmap(), uint16(port)), token: t.Token, sb: sb,
			signed: signed}
		if viaQuery && !viaCookie {
			if ck := tokenCookie(rt.id, t.Token, rt.cookiePath, r.TLS != nil); ck.Valid() == nil {
				f.setCookie = ck
			}
		}
		return f, nil
	}
}

// notRunning says what to do about a sandbox in state.
func notRunning(id, state string) string {
	switch state {
	case "paused":
		return fmt.Sprintf("sandbox %s is paused: resume it with POST /v1/sandboxes/%s/connect, then retry", id, id)
	case "starting":
		return fmt.Sprintf("sandbox %s is still starting: retry in a moment", id)
	case "killed":
		return fmt.Sprintf("sandbox %s was killed: create a new one", id)
	}
	return fmt.Sprintf("sandbox %s is %s, not running: connect to it again with POST /v1/sandboxes/%s/connect", id, state, id)
}

// rewrite points the outbound request at the sandbox service.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	f := forwardOf(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = f.addr.String()
	if f.rewrite {
		pr.Out.URL.Path, pr.Out.URL.RawPath = f.path, f.rawPath
	}
	pr.Out.URL.RawQuery = stripQueryToken(pr.Out.URL.RawQuery)
	stripTokenCookies(pr.Out.Header)
	stripBearer(pr.Out.Header, f.token)
	pr.Out.Header.Del(HeaderTrafficToken)
	pr.Out.Header.Del("X-Access-Token")
	if f.port == AgentPort && !f.signed {
		// Only the agent gets the token; other ports run arbitrary
		// services, which must not be able to drive the agent. A signed
		// file URL goes without it, so that the agent checks the
		// signature and nothing else.
		pr.Out.Header.Set("X-Access-Token", f.token)
	}
	pr.SetXForwarded()
}

// roundTripper adapts a function to http.RoundTripper.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends r through the transport of its sandbox.
func (p *Proxy) roundTrip(r *http.Request) (*http.Response, error) {
	f := forwardOf(r.Context())
	if f == nil {
		return nil, errors.New("proxy: request without a sandbox route")
	}
	return f.sb.transport.RoundTrip(r)
}

func (p *Proxy) modifyResponse(res *http.Response) error {
	if f := forwardOf(res.Request.Context()); f != nil && f.setCookie != nil {
		res.Header.Add("Set-Cookie", f.setCookie.String())
	}
	return nil
}

// forwardError answers a request the sandbox service did not answer.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away; nobody reads an answer
	}
	f := forwardOf(r.Context())
	if errors.Is(err, errSandboxClosed) {
		p.writeError(w, http.StatusBadGateway, desktop.Errorf(desktop.CodeUnavailable,
			"sandbox %s was stopped while this request was under way", f.id))
		return
	}
	p.log.Warn("sandbox service does not answer", "sandbox_id", f.id, "port", f.port, "error", err)
	p.writeError(w, http.StatusBadGateway, desktop.Errorf(desktop.CodeUnavailable,
		"sandbox %s does not answer on port %d: start the service inside the sandbox (or wait until it listens) and retry",
		f.id, f.port))
}

// writeError writes e as {"error": {...}} with status.
func (p *Proxy) writeError(w http.ResponseWriter, status int, e *desktop.Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]*desktop.Error{"error": e})
}
