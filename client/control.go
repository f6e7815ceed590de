package client

import (
	"context"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// DefaultServerURL is where `cubicle serve` listens unless told otherwise.
const DefaultServerURL = "http://127.0.0.1:8080"

// Sandbox states.
const (
	StateStarting = apitype.StateStarting
	StateRunning  = apitype.StateRunning
	StatePaused   = apitype.StatePaused
	StateKilled   = apitype.StateKilled
)

// Server is a client of a Cubicle server (`cubicle serve`): it creates,
// lists and kills sandboxes, each a desktop of its own. Its methods are safe
// for concurrent use.
type Server struct {
	t *transport
}

// New returns a client of the server at serverURL ("http://host:8080"; a
// bare "host:port" means http) that authenticates with apiKey. It does not
// contact the server: the first call does. WithHTTPClient and
// WithUserAgent apply; WithToken does not (sandboxes carry their own
// access token).
func New(serverURL, apiKey string, opts ...Option) (*Server, error) {
	o := options{userAgent: "cubicle-go-client"}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := parseBaseURL(serverURL)
	if err != nil {
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "url", Index: -1,
			Message: fmt.Sprintf("bad server URL %s; use a form like %s", quoteURL(serverURL), DefaultServerURL)}
	}
	if apiKey == "" {
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "api_key", Index: -1,
			Message: "API key is empty; create one on the server and pass it (the CLI reads CUBICLE_API_KEY)"}
	}
	t := &transport{base: base, header: http.Header{}, peer: "server"}
	t.header.Set("Authorization", "Bearer "+apiKey)
	if o.userAgent != "" {
		t.header.Set("User-Agent", o.userAgent)
	}
	if o.client != nil {
		t.client = o.client
	} else {
		t.owned = newHTTPTransport()
		t.client = &http.Client{Transport: t.owned}
	}
	return &Server{t: t}, nil
}

// URL returns the base URL of the server.
func (s *Server) URL() string { return s.t.base }

// Close releases the idle connections of the Server's own HTTP client,
// which the sandboxes it returned share. It kills nothing.
func (s *Server) Close() error {
	if s.t.owned != nil {
		s.t.owned.CloseIdleConnections()
	}
	return nil
}

// Token is a secret (a sandbox's access token, a stream token). It prints
// and logs as "[redacted]"; string(tok) is the secret.
type Token = apitype.Token

// Limits are the resources of a sandbox; zero fields take the server's
// defaults.
type Limits = apitype.Limits

// Network is the outbound network policy of a sandbox. AllowOut and
// DenyOut are CIDRs ("10.1.0.0/16") that refine Internet.
type Network = apitype.Network

// SandboxInfo is a sandbox as the server describes it. Its AccessToken
// opens the sandbox's agent; only its owner gets it.
type SandboxInfo = apitype.Sandbox

// CreateOptions shape a new sandbox. Zero fields take the server's
// defaults.
type CreateOptions struct {
	// Template is the root filesystem to start from; default "desktop".
	Template string
	// Resolution is the screen size; default 1024x768.
	Resolution desktop.Size
	// DPI of the screen; default 96.
	DPI int
	// Timeout is how long the sandbox lives before it is killed (rounded up
	// to seconds); default 5 minutes. Extend it with SetTimeout.
	Timeout time.Duration
	// Metadata are labels to find the sandbox by in List.
	Metadata map[string]string
	// Env is the default environment of every command in the sandbox.
	Env map[string]string
	// Limits bound CPU, memory and disk.
	Limits *Limits
	// Network is the outbound policy; nil keeps the default (internet on).
	Network *Network
}

// seconds rounds a positive duration up to whole seconds.
func seconds(field string, d time.Duration) (int, error) {
	if d < 0 {
		return 0, &desktop.Error{Code: desktop.CodeInvalid, Field: field, Index: -1,
			Message: fmt.Sprintf("%s %s is negative", field, d)}
	}
	return int((d + time.Second - 1) / time.Second), nil
}

// Create starts a sandbox and returns it once its desktop is ready. The
// returned Sandbox drives the desktop through the server.
func (s *Server) Create(ctx context.Context, o CreateOptions) (*Sandbox, error) {
	timeout, err := seconds("timeout", o.Timeout)
	if err != nil {
		return nil, err
	}
	body := apitype.CreateRequest{Template: o.Template, DPI: o.DPI, TimeoutS: timeout, Metadata: o.Metadata,
		Env: o.Env, Network: o.Network,
		Resolution: apitype.Resolution{Width: o.Resolution.Width, Height: o.Resolution.Height}}
	if o.Limits != nil {
		body.Limits = *o.Limits
	}
	var info SandboxInfo
	if err := s.t.call(ctx, http.MethodPost, "/v1/sandboxes", nil, body, &info); err != nil {
		return nil, err
	}
	return s.sandbox(&info)
}

// ConnectOptions shape Connect.
type ConnectOptions struct {
	// Timeout, when set, becomes the sandbox's new time to live from now.
	Timeout time.Duration
}

// Connect returns the sandbox with the given id, resuming it if it is
// paused. At most one ConnectOptions is used.
func (s *Server) Connect(ctx context.Context, id string, opts ...ConnectOptions) (*Sandbox, error) {
	path, err := sandboxPath(id, "/connect")
	if err != nil {
		return nil, err
	}
	var body apitype.ConnectRequest
	if len(opts) > 0 && opts[0].Timeout != 0 {
		n, err := seconds("timeout", opts[0].Timeout)
		if err != nil {
			return nil, err
		}
		body.TimeoutS = &n
	}
	var info SandboxInfo
	if err := s.t.call(ctx, http.MethodPost, path, nil, body, &info); err != nil {
		return nil, err
	}
	return s.sandbox(&info)
}

// Get describes the sandbox with the given id without connecting to it.
func (s *Server) Get(ctx context.Context, id string) (*SandboxInfo, error) {
	path, err := sandboxPath(id, "")
	if err != nil {
		return nil, err
	}
	var info SandboxInfo
	if err := s.t.call(ctx, http.MethodGet, path, nil, nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Kill stops the sandbox with the given id and deletes it. An unknown id
// gives an error of class ErrNotFound.
func (s *Server) Kill(ctx context.Context, id string) error {
	path, err := sandboxPath(id, "")
	if err != nil {
		return err
	}
	return s.t.call(ctx, http.MethodDelete, path, nil, nil, nil)
}

// ListOptions filter List.
type ListOptions struct {
	// State keeps sandboxes in one of these states; empty means running
	// and paused.
	State []string
	// Metadata keeps sandboxes whose metadata has all these pairs.
	Metadata map[string]string
	// Limit is the page size, 1 to 100; 0 is the server's (100).
	Limit int
	// Cursor starts at a page returned before (SandboxPage.Cursor).
	Cursor string
}

// SandboxPage is one page of List.
type SandboxPage struct {
	Sandboxes []SandboxInfo
	// Cursor fetches the next page; "" on the last one.
	Cursor string

	srv  *Server
	opts ListOptions
}

// HasNext reports whether there is a page after p.
func (p *SandboxPage) HasNext() bool { return p.Cursor != "" }

// Next fetches the page after p.
func (p *SandboxPage) Next(ctx context.Context) (*SandboxPage, error) {
	if !p.HasNext() {
		return nil, desktop.Errorf(desktop.CodeInvalid, "there is no page after the last one; check HasNext first")
	}
	o := p.opts
	o.Cursor = p.Cursor
	return p.srv.List(ctx, o)
}

// List returns the first page of the caller's sandboxes that match o;
// follow SandboxPage.Next, or use All.
func (s *Server) List(ctx context.Context, o ListOptions) (*SandboxPage, error) {
	q := url.Values{}
	if len(o.State) > 0 {
		q.Set("state", strings.Join(o.State, ","))
	}
	keys := make([]string, 0, len(o.Metadata))
	for k := range o.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		q.Add("metadata", k+"="+o.Metadata[k])
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("next", o.Cursor)
	}
	var list apitype.ListResponse
	if err := s.t.call(ctx, http.MethodGet, "/v1/sandboxes", q, nil, &list); err != nil {
		return nil, err
	}
	if list.Sandboxes == nil {
		list.Sandboxes = []SandboxInfo{}
	}
	return &SandboxPage{Sandboxes: list.Sandboxes, Cursor: list.Next, srv: s, opts: o}, nil
}

// All yields every sandbox that matches o, page after page. It stops at
// the first error, which it yields.
func (s *Server) All(ctx context.Context, o ListOptions) iter.Seq2[SandboxInfo, error] {
	return func(yield func(SandboxInfo, error) bool) {
		page, err := s.List(ctx, o)
		for {
			if err != nil {
				yield(SandboxInfo{}, err)
				return
			}
			for _, sb := range page.Sandboxes {
				if !yield(sb, nil) {
					return
				}
			}
			if !page.HasNext() {
				return
			}
			page, err = page.Next(ctx)
		}
	}
}

// sandboxPath is /v1/sandboxes/{id}{suffix}, with id checked.
func sandboxPath(id, suffix string) (string, error) {
	if !validID(id) {
		return "", &desktop.Error{Code: desktop.CodeInvalid, Field: "id", Index: -1,
			Message: fmt.Sprintf("sandbox id %q is not valid: ids are lowercase letters and digits", id)}
	}
	return "/v1/sandboxes/" + id + suffix, nil
}

// validID reports whether id can be a sandbox id: [a-z0-9], at most 64.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// sandbox returns a Sandbox that reaches the agent of info through the
// server's proxy, with the sandbox's access token (never the API key).
func (s *Server) sandbox(info *SandboxInfo) (*Sandbox, error) {
	if !validID(info.ID) {
		return nil, desktop.Errorf(desktop.CodeInternal, "client: the server answered with sandbox id %q, which is not valid", info.ID)
	}
	t := &transport{base: s.t.base + "/sandboxes/" + info.ID + "/agent", header: http.Header{}, client: s.t.client, peer: "server"}
	if info.AccessToken != "" {
		t.header.Set("X-Access-Token", string(info.AccessToken))
	}
	if ua := s.t.header.Get("User-Agent"); ua != "" {
		t.header.Set("User-Agent", ua)
	}
	return newSandbox(t, &control{srv: s, id: info.ID}), nil
}

// control is what a Sandbox made by a Server knows of it.
type control struct {
	srv *Server
	id  string
}

// newSandbox returns a Sandbox on t; ctl is nil for a bare agent.
func newSandbox(t *transport, ctl *control) *Sandbox {
	s := &Sandbox{t: t, ctl: ctl}
	s.Commands = &Commands{s: s}
	s.Files = &Files{s: s}
	return s
}

// errNoServer is the error of the lifecycle calls of a Sandbox that talks
// to an agent directly.
func errNoServer(op string) error {
	return desktop.Errorf(desktop.CodeInvalid,
		"%s needs a sandbox from Server.Create or Server.Connect; this one talks to an agent directly (ConnectAgent)", op)
}

// ID returns the sandbox's id, or "" when the Sandbox talks to an agent
// directly.
func (s *Sandbox) ID() string {
	if s.ctl == nil {
		return ""
	}
	return s.ctl.id
}

// Info describes the sandbox as the server sees it now.
func (s *Sandbox) Info(ctx context.Context) (*SandboxInfo, error) {
	if s.ctl == nil {
		return nil, errNoServer("Info")
	}
	return s.ctl.srv.Get(ctx, s.ctl.id)
}

// SetTimeout makes the sandbox live d from now (longer or shorter than
// before), rounded up to seconds.
func (s *Sandbox) SetTimeout(ctx context.Context, d time.Duration) error {
	if s.ctl == nil {
		return errNoServer("SetTimeout")
	}
	n, err := seconds("timeout", d)
	if err != nil {
		return err
	}
	if n == 0 {
		return &desktop.Error{Code: desktop.CodeInvalid, Field: "timeout", Index: -1, Message: "timeout must be at least 1s; use Kill to end the sandbox now"}
	}
	return s.ctl.srv.t.call(ctx, http.MethodPost, "/v1/sandboxes/"+s.ctl.id+"/timeout", nil, apitype.TimeoutRequest{TimeoutS: &n}, nil)
}

// SetMetadata replaces the sandbox's metadata.
func (s *Sandbox) SetMetadata(ctx context.Context, md map[string]string) error {
	if s.ctl == nil {
		return errNoServer("SetMetadata")
	}
	if md == nil {
		md = map[string]string{}
	}
	return s.ctl.srv.t.call(ctx, http.MethodPatch, "/v1/sandboxes/"+s.ctl.id+"/metadata", nil, apitype.MetadataRequest{Metadata: md}, nil)
}

// Kill stops the sandbox and deletes it.
func (s *Sandbox) Kill(ctx context.Context) error {
	if s.ctl == nil {
		return errNoServer("Kill")
	}
	return s.ctl.srv.Kill(ctx, s.ctl.id)
}

// Pause freezes the sandbox; Server.Connect resumes it. Pausing a paused
// sandbox gives an error of class ErrConflict.
func (s *Sandbox) Pause(ctx context.Context) error {
	if s.ctl == nil {
		return errNoServer("Pause")
	}
	return s.ctl.srv.t.call(ctx, http.MethodPost, "/v1/sandboxes/"+s.ctl.id+"/pause", nil, nil, nil)
}

// SetNetwork replaces the sandbox's outbound network policy, live.
func (s *Sandbox) SetNetwork(ctx context.Context, n Network) error {
	if s.ctl == nil {
		return errNoServer("SetNetwork")
	}
	return s.ctl.srv.t.call(ctx, http.MethodPut, "/v1/sandboxes/"+s.ctl.id+"/network", nil, n, nil)
}

// Metrics is the resource use of a sandbox at one moment. Memory and disk
// are in bytes.
type Metrics = apitype.Metrics

// Metrics returns the sandbox's resource use now.
func (s *Sandbox) Metrics(ctx context.Context) (*Metrics, error) {
	if s.ctl == nil {
		return nil, errNoServer("Metrics")
	}
	var m Metrics
	if err := s.ctl.srv.t.call(ctx, http.MethodGet, "/v1/sandboxes/"+s.ctl.id+"/metrics", nil, nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
