package clienttest

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// TestAPIKey is the API key a fake server accepts unless told otherwise.
const TestAPIKey = "cbk_0123456789abcdef0123456789abcdef01234567"

// ServerOptions configure a fake server.
type ServerOptions struct {
	// APIKeys are the keys the server accepts, each an owner of its own
	// sandboxes; default TestAPIKey.
	APIKeys []string
	// Now is the server's clock; default a fixed time, so that outputs
	// are stable.
	Now func() time.Time
	// Agent shapes the fake agent of every sandbox; its Token is the
	// sandbox's access token.
	Agent Options
}

// Server is a fake Cubicle server (`cubicle serve`): a real HTTP server on
// loopback that speaks the /v1 control-plane API and proxies
// /sandboxes/{id}/agent/... to a fake agent per sandbox. It validates
// requests like the server does and records every request it receives.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port".
	URL string

	srv  *httptest.Server
	keys []string
	now  func() time.Time
	agOp Options

	mu        sync.Mutex
	requests  []Request
	sandboxes []*fakeSandbox // in creation order
	made      int
}

// fakeSandbox is one imaginary sandbox.
type fakeSandbox struct {
	info  apitype.Sandbox
	owner string
	agent *Agent
}

// StartServer starts a fake server and closes it when the test ends.
func StartServer(tb testing.TB, o ServerOptions) *Server {
	tb.Helper()
	s := NewServer(o)
	tb.Cleanup(s.Close)
	return s
}

// NewServer starts a fake server. Close it when done.
func NewServer(o ServerOptions) *Server {
	s := &Server{keys: o.APIKeys, now: o.Now, agOp: o.Agent}
	if len(s.keys) == 0 {
		s.keys = []string{TestAPIKey}
	}
	if s.now == nil {
		fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		s.now = func() time.Time { return fixed }
	}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	return s
}

// Close stops the server and the agents of its sandboxes.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sb := range s.sandboxes {
		sb.agent.Close()
	}
}

// Requests returns the control-plane requests received so far (those to
// /v1/...), oldest first. The agent of each sandbox records its own.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Agent returns the fake agent of the sandbox id, or nil.
func (s *Server) Agent(id string) *Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb := s.findLocked(id); sb != nil {
		return sb.agent
	}
	return nil
}

func (s *Server) findLocked(id string) *fakeSandbox {
	for _, sb := range s.sandboxes {
		if sb.info.ID == id {
			return sb
		}
	}
	return nil
}

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/sandboxes", s.owned(s.handleCreate))
	m.HandleFunc("GET /v1/sandboxes", s.owned(s.handleList))
	m.HandleFunc("GET /v1/sandboxes/{id}", s.withSandbox(s.handleGet))
	m.HandleFunc("DELETE /v1/sandboxes/{id}", s.withSandbox(s.handleKill))
	m.HandleFunc("POST /v1/sandboxes/{id}/timeout", s.withSandbox(s.handleTimeout))
	m.HandleFunc("PATCH /v1/sandboxes/{id}/metadata", s.withSandbox(s.handleMetadata))
	m.HandleFunc("POST /v1/sandboxes/{id}/connect", s.withSandbox(s.handleConnect))
	m.HandleFunc("POST /v1/sandboxes/{id}/pause", s.withSandbox(s.handlePause))
	m.HandleFunc("PUT /v1/sandboxes/{id}/network", s.withSandbox(s.handleNetwork))
	m.HandleFunc("GET /v1/sandboxes/{id}/metrics", s.withSandbox(s.handleMetrics))
	m.HandleFunc("/sandboxes/{id}/agent/{rest...}", s.handleProxy)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, desktop.Errorf(desktop.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return m
}

// owner returns the API key of r if it is one of the server's, else "".
func (s *Server) owner(r *http.Request) string {
	got := r.Header.Get("X-API-Key")
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = b
	}
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			return k
		}
	}
	return ""
}

type ownedHandler func(w http.ResponseWriter, r *http.Request, owner string)

// owned records the request and checks its API key.
func (s *Server) owned(h ownedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec, err := record(r)
		if err != nil {
			writeError(w, err)
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		owner := s.owner(r)
		if owner == "" {
			writeError(w, desktop.Errorf(desktop.CodeUnauthorized, "missing or unknown API key; send it as Authorization: Bearer KEY"))
			return
		}
		h(w, r, owner)
	}
}

// withSandbox also finds the sandbox of the path among the owner's.
func (s *Server) withSandbox(h func(w http.ResponseWriter, r *http.Request, sb *fakeSandbox)) http.HandlerFunc {
	return s.owned(func(w http.ResponseWriter, r *http.Request, owner string) {
		id := r.PathValue("id")
		s.mu.Lock()
		sb := s.findLocked(id)
		s.mu.Unlock()
		if sb == nil || sb.owner != owner {
			writeError(w, &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "id", Message: fmt.Sprintf("no sandbox %q", id)})
			return
		}
		h(w, r, sb)
	})
}

func invalid(field, format string, args ...any) error {
	return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, owner string) {
	// Fields left out keep these defaults, as on the real server.
	req := apitype.CreateRequest{Template: "desktop", Resolution: apitype.Resolution{Width: 1024, Height: 768}, DPI: 96,
		TimeoutS: 300, Network: &apitype.Network{Internet: true}}
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Network == nil {
		req.Network = &apitype.Network{Internet: true}
	}
	info := apitype.Sandbox{Template: req.Template, Resolution: req.Resolution, DPI: req.DPI,
		Metadata: req.Metadata, Limits: apitype.Limits{CPUs: 1, MemoryMB: 2048, DiskMB: 4096}}
	var err error
	switch {
	case req.Template != "desktop":
		err = &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "template", Message: fmt.Sprintf("no template %q", req.Template)}
	case req.Resolution.Width < 64 || req.Resolution.Width > 8192 || req.Resolution.Height < 64 || req.Resolution.Height > 8192:
		err = invalid("resolution", "resolution %dx%d out of range 64..8192", req.Resolution.Width, req.Resolution.Height)
	case req.DPI < 50 || req.DPI > 500:
		err = invalid("dpi", "dpi %d out of range 50..500", req.DPI)
	case req.TimeoutS < 1 || req.TimeoutS > 86400:
		err = invalid("timeout_s", "timeout_s %d out of range 1..86400", req.TimeoutS)
	default:
		err = checkMetadata(req.Metadata)
	}
	for k := range req.Env {
		if err == nil && !envName(k) {
			err = invalid("env", "environment variable name %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
	}
	if err == nil {
		err = checkNetwork(req.Network)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if req.Limits != (apitype.Limits{}) {
		info.Limits = req.Limits
	}
	info.Network = answerNetwork(*req.Network)
	if info.Metadata == nil {
		info.Metadata = map[string]string{}
	}
	s.mu.Lock()
	s.made++
	info.ID = fmt.Sprintf("sbx%017d", s.made)
	info.AccessToken = apitype.Token("tok-" + info.ID)
	info.AgentURL = s.URL + "/sandboxes/" + info.ID + "/agent"
	info.State = apitype.StateRunning
	info.StartedAt = s.now()
	info.EndAt = info.StartedAt.Add(time.Duration(req.TimeoutS) * time.Second)
	ao := s.agOp
	ao.Token = string(info.AccessToken)
	if ao.Screen == (desktop.Size{}) {
		ao.Screen = desktop.Size{Width: info.Resolution.Width, Height: info.Resolution.Height}
	}
	sb := &fakeSandbox{info: info, owner: owner, agent: New(ao)}
	s.sandboxes = append(s.sandboxes, sb)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, info)
}

func checkMetadata(md map[string]string) error {
	if len(md) > 64 {
		return invalid("metadata", "metadata has %d keys, more than 64", len(md))
	}
	for k, v := range md {
		if k == "" || len(k) > 256 || len(v) > 1024 {
			return invalid("metadata", "metadata key %q: keys are 1 to 256 characters, values up to 1024", k)
		}
	}
	return nil
}

func checkNetwork(n *apitype.Network) error {
	for _, c := range append(append([]string{}, n.AllowOut...), n.DenyOut...) {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return invalid("network", "%q is not a CIDR such as 10.0.0.0/8", c)
		}
	}
	return nil
}

// answerNetwork is n as an answer carries it: both lists, empty or not.
func answerNetwork(n apitype.Network) apitype.Network {
	if n.AllowOut == nil {
		n.AllowOut = []string{}
	}
	if n.DenyOut == nil {
		n.DenyOut = []string{}
	}
	return n
}

func envName(k string) bool {
	for i, r := range k {
		if r != '_' && (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return k != ""
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, owner string) {
	if err := checkQuery(r, "state", "metadata", "limit", "next"); err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	states := []string{"running", "paused"}
	if v := q.Get("state"); v != "" {
		states = strings.Split(v, ",")
	}
	filter := map[string]string{}
	for _, kv := range q["metadata"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			writeError(w, invalid("metadata", "metadata filter %q is not k=v", kv))
			return
		}
		filter[k] = v
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, invalid("limit", "limit %q must be 1 to 100", v))
			return
		}
		limit = n
	}
	start := 0
	if v := q.Get("next"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "c"))
		if err != nil || !strings.HasPrefix(v, "c") || n < 0 {
			writeError(w, invalid("next", "bad cursor %q", v))
			return
		}
		start = n
	}
	s.mu.Lock()
	var match []apitype.Sandbox
	for _, sb := range s.sandboxes {
		ok := sb.owner == owner && slices.Contains(states, sb.info.State)
		for k, v := range filter {
			ok = ok && sb.info.Metadata[k] == v
		}
		if ok {
			info := sb.info
			info.AccessToken = ""
			match = append(match, info)
		}
	}
	s.mu.Unlock()
	page := apitype.ListResponse{Sandboxes: []apitype.Sandbox{}}
	if start < len(match) {
		end := min(start+limit, len(match))
		page.Sandboxes = match[start:end]
		if end < len(match) {
			page.Next = "c" + strconv.Itoa(end)
		}
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *Server) info(sb *fakeSandbox) apitype.Sandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sb.info
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	writeJSON(w, http.StatusOK, s.info(sb))
}

func (s *Server) handleKill(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	s.mu.Lock()
	s.sandboxes = slices.DeleteFunc(s.sandboxes, func(x *fakeSandbox) bool { return x == sb })
	s.mu.Unlock()
	sb.agent.Close()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleTimeout(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	var body apitype.TimeoutRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if body.TimeoutS == nil {
		writeError(w, invalid("timeout_s", "timeout_s is required"))
		return
	}
	if t := *body.TimeoutS; t < 1 || t > 86400 {
		writeError(w, invalid("timeout_s", "timeout_s %d out of range 1..86400", t))
		return
	}
	s.mu.Lock()
	sb.info.EndAt = s.now().Add(time.Duration(*body.TimeoutS) * time.Second)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.info(sb))
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	var body apitype.MetadataRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if body.Metadata == nil {
		writeError(w, invalid("metadata", "metadata is required; send {\"metadata\": {}} to clear it"))
		return
	}
	if err := checkMetadata(body.Metadata); err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	sb.info.Metadata = body.Metadata
	if sb.info.Metadata == nil {
		sb.info.Metadata = map[string]string{}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.info(sb))
}

func (s *Server) handleConnect(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	var body apitype.ConnectRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if t := body.TimeoutS; t != nil && (*t < 1 || *t > 86400) {
		writeError(w, invalid("timeout_s", "timeout_s %d out of range 1..86400", *t))
		return
	}
	s.mu.Lock()
	sb.info.State = apitype.StateRunning
	if body.TimeoutS != nil {
		sb.info.EndAt = s.now().Add(time.Duration(*body.TimeoutS) * time.Second)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.info(sb))
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb.info.State == apitype.StatePaused {
		writeError(w, desktop.Errorf(desktop.CodeConflict, "sandbox %s is already paused", sb.info.ID))
		return
	}
	sb.info.State = apitype.StatePaused
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleNetwork(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	body := apitype.Network{Internet: true}
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	if err := checkNetwork(&body); err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	sb.info.Network = answerNetwork(body)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.info(sb))
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request, sb *fakeSandbox) {
	writeJSON(w, http.StatusOK, apitype.Metrics{
		CPUCount: 1, CPUUsedPct: 12.5, MemUsed: 300 << 20, MemTotal: 2048 << 20,
		MemCache: 50 << 20, DiskUsed: 1 << 30, DiskTotal: 4 << 30, Timestamp: s.now(),
	})
}

// handleProxy forwards /sandboxes/{id}/agent/<path> to the sandbox's fake
// agent, which checks the access token itself.
func (s *Server) handleProxy(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	sb := s.findLocked(id)
	var state, agentURL string
	if sb != nil {
		state, agentURL = sb.info.State, sb.agent.URL
	}
	s.mu.Unlock()
	switch {
	case sb == nil:
		writeError(w, &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "id", Message: fmt.Sprintf("no sandbox %q", id)})
		return
	case state != "running":
		writeError(w, desktop.Errorf(desktop.CodeUnavailable, "sandbox %s is %s; connect to resume it", id, state))
		return
	}
	target, _ := url.Parse(agentURL)
	rest := "/" + r.PathValue("rest")
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = rest
			pr.Out.URL.RawPath = ""
			pr.Out.Header.Del("Authorization")
		},
		FlushInterval: -1,
	}
	p.ServeHTTP(w, r)
}

// record reads r into a Request and puts its body back.
func record(r *http.Request) (Request, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return Request{}, desktop.Errorf(desktop.CodeBadRequest, "read the request body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}, nil
}
