package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// DefaultAgentURL is where an agent listens unless told otherwise.
const DefaultAgentURL = "http://127.0.0.1:49983"

// The error classes of desktop, here for convenience: test an error with
// errors.Is(err, client.ErrNotFound).
var (
	ErrInvalid      = desktop.ErrInvalid
	ErrNotFound     = desktop.ErrNotFound
	ErrConflict     = desktop.ErrConflict
	ErrUnavailable  = desktop.ErrUnavailable
	ErrTimeout      = desktop.ErrTimeout
	ErrUnauthorized = desktop.ErrUnauthorized
	ErrTooLarge     = desktop.ErrTooLarge
	ErrInternal     = desktop.ErrInternal
)

// Error is the error the agent reports: a stable Code, a Message, the Index
// of the failing action of a batch (or -1) and the Field that was wrong.
type Error = desktop.Error

// Sandbox is the handle to one desktop. Its methods are safe for concurrent
// use; calls from one goroutine run on the desktop in the order they are
// made. Close it when done to release idle connections.
type Sandbox struct {
	t *transport
	// Commands runs shell commands and programs on the desktop.
	Commands *Commands
	// Files reads and writes files on the desktop.
	Files *Files
	ctl   *control // nil when made by ConnectAgent
}

// Option configures a Sandbox.
type Option func(*options)

type options struct {
	token     string
	client    *http.Client
	userAgent string
}

// WithToken sends token in the X-Access-Token header of every request. An
// empty token sends none.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithHTTPClient makes the Sandbox use c for its requests instead of a client
// of its own. Close then leaves c's connections alone.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.client = c }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}

// ConnectAgent returns a Sandbox that talks straight to the agent at
// agentURL ("http://host:49983"; a bare "host:port" means http). It does not
// contact the agent: the first call does. Use WaitReady to wait until the
// desktop is up.
func ConnectAgent(agentURL string, opts ...Option) (*Sandbox, error) {
	o := options{userAgent: "cubicle-go-client"}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := parseBaseURL(agentURL)
	if err != nil {
		return nil, err
	}
	t := &transport{base: base, header: http.Header{}}
	if o.token != "" {
		t.header.Set("X-Access-Token", o.token)
	}
	if o.userAgent != "" {
		t.header.Set("User-Agent", o.userAgent)
	}
	if o.client != nil {
		t.client = o.client
	} else {
		t.owned = newHTTPTransport()
		t.client = &http.Client{Transport: t.owned}
	}
	return newSandbox(t, nil), nil
}

// parseBaseURL checks an agent URL and returns it without a trailing slash.
func parseBaseURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", &desktop.Error{Code: desktop.CodeInvalid, Field: "url", Index: -1,
			Message: "agent URL is empty; use a form like " + DefaultAgentURL}
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", &desktop.Error{Code: desktop.CodeInvalid, Field: "url", Index: -1,
			Message: "bad agent URL " + quoteURL(s) + "; use a form like " + DefaultAgentURL}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func quoteURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		s = u.Redacted()
	}
	return `"` + s + `"`
}

// newHTTPTransport returns a transport tuned for many small requests to one
// host: kept-alive connections, enough of them idle for concurrent callers.
func newHTTPTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 64
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// AgentURL returns the base URL the Sandbox sends its requests to.
func (s *Sandbox) AgentURL() string { return s.t.base }

// Close releases the idle connections of the Sandbox's own HTTP client. It
// does not stop the desktop. A Sandbox made WithHTTPClient leaves that
// client alone.
func (s *Sandbox) Close() error {
	if s.t.owned != nil {
		s.t.owned.CloseIdleConnections()
	}
	return nil
}

// Health checks that the agent process answers (GET /health). It needs no
// token and says nothing about the desktop; see Ready for that.
func (s *Sandbox) Health(ctx context.Context) error {
	return s.t.call(ctx, http.MethodGet, "/health", nil, nil, nil)
}
