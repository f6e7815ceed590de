// Package clienttest is a fake Cubicle desktop agent for tests: a real HTTP
// server on loopback that speaks the agent API (the routes, JSON shapes,
// error bodies and access token of the agent's OpenAPI document) over an
// imaginary desktop. It checks requests as strictly as the agent does
// (unknown JSON fields and query parameters are errors, actions are
// validated with package desktop), keeps a little state (pointer,
// clipboard, windows, readiness) and records every request it receives, so
// a test can assert exactly what a client sent.
package clienttest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Options configure a fake agent.
type Options struct {
	// Token, when set, is required in X-Access-Token or
	// "Authorization: Bearer" on every request but GET /health.
	Token string
	// Screen is the size of the imaginary screen; default 1024x768.
	Screen desktop.Size
	// Windows are the windows the agent lists. A window with Focused set is
	// the active one.
	Windows []desktop.Window
	// NotReady, when set, starts the agent not ready, with this reason; see
	// SetReady.
	NotReady string
	// RunCommand plays the commands the agent is asked to run; nil echoes
	// each command line, then what it read on stdin.
	RunCommand func(Command) CommandOutput
	// Files are the files on the imaginary disk, by absolute path;
	// directories on the way exist.
	Files map[string][]byte
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// String shows r as "METHOD /path?query body".
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if len(r.Query) > 0 {
		s += "?" + r.Query.Encode()
	}
	if len(r.Body) > 0 {
		s += " " + string(r.Body)
	}
	return s
}

// Agent is a running fake agent. Its methods are safe for concurrent use.
type Agent struct {
	// URL is the base URL of the agent, "http://127.0.0.1:port".
	URL string

	srv   *httptest.Server
	mux   *http.ServeMux
	token string

	mu        sync.Mutex
	requests  []Request
	conns     int
	overrides map[string]http.HandlerFunc
	ready     bool
	reason    string
	readyCh   chan struct{} // closed when the desktop becomes ready
	screen    desktop.Size
	cursor    desktop.Point
	windows   []desktop.Window
	clipboard string
	lastPID   int
	drawn     bool   // something happened since the last screenshot
	lastShot  string // the options of the last screenshot
	stream    string // the address of the running stream, or ""
	sys       *system
}

// Start starts a fake agent and closes it when the test ends.
func Start(tb testing.TB, o Options) *Agent {
	tb.Helper()
	a := New(o)
	tb.Cleanup(a.Close)
	return a
}

// New starts a fake agent. Close it when done.
func New(o Options) *Agent {
	a := &Agent{
		token:     o.Token,
		overrides: map[string]http.HandlerFunc{},
		screen:    o.Screen,
		windows:   append([]desktop.Window(nil), o.Windows...),
		readyCh:   make(chan struct{}),
		ready:     o.NotReady == "",
		reason:    o.NotReady,
		drawn:     true,
		lastPID:   999,
		sys:       newSystem(o),
	}
	if a.screen == (desktop.Size{}) {
		a.screen = desktop.Size{Width: 1024, Height: 768}
	}
	a.cursor = desktop.Point{X: a.screen.Width / 2, Y: a.screen.Height / 2}
	if a.ready {
		close(a.readyCh)
	}
	a.mux = a.routes()
	a.srv = httptest.NewUnstartedServer(a)
	a.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.mu.Lock()
			a.conns++
			a.mu.Unlock()
		}
	}
	a.srv.Start()
	a.URL = a.srv.URL
	return a
}

// Close stops the server and waits for its handlers.
func (a *Agent) Close() {
	a.srv.CloseClientConnections()
	a.srv.Close()
}

// Requests returns the requests received so far, oldest first.
func (a *Agent) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.requests...)
}

// ClearRequests forgets the requests received so far.
func (a *Agent) ClearRequests() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests = nil
}

// Conns returns how many TCP connections clients have opened.
func (a *Agent) Conns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conns
}

// Override answers requests for pattern ("POST /v1/action": a method and an
// exact path) with h, before the token check; a nil h removes the override.
// Use it to play a proxy's error page or a hanging agent.
func (a *Agent) Override(pattern string, h http.HandlerFunc) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h == nil {
		delete(a.overrides, pattern)
		return
	}
	a.overrides[pattern] = h
}

// SetReady makes the desktop ready or not; reason says why it is not.
// Requests waiting in GET /v1/ready?wait= return when it becomes ready.
func (a *Agent) SetReady(ready bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ready == a.ready {
		a.reason = reason
		return
	}
	a.ready, a.reason = ready, reason
	if ready {
		close(a.readyCh)
	} else {
		a.readyCh = make(chan struct{})
	}
}

// Cursor returns where the imaginary pointer is.
func (a *Agent) Cursor() desktop.Point {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cursor
}

// Clipboard returns the text on the imaginary clipboard.
func (a *Agent) Clipboard() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clipboard
}

// Windows returns the imaginary windows.
func (a *Agent) Windows() []desktop.Window {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]desktop.Window(nil), a.windows...)
}

// ServeHTTP records the request, then answers it.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, desktop.Errorf(desktop.CodeBadRequest, "read the request body: %v", err))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	a.mu.Lock()
	a.requests = append(a.requests, Request{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Body:   body,
	})
	h := a.overrides[r.Method+" "+r.URL.Path]
	a.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	if r.URL.Path != "/health" && !a.authorized(r) {
		writeError(w, desktop.Errorf(desktop.CodeUnauthorized,
			"missing or wrong access token; send it in the X-Access-Token header"))
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *Agent) authorized(r *http.Request) bool {
	if a.token == "" {
		return true
	}
	got := r.Header.Get("X-Access-Token")
	if got == "" {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// asError turns err into the *desktop.Error it is or stands for.
func asError(err error) *desktop.Error {
	var de *desktop.Error
	if errors.As(err, &de) {
		return de
	}
	return &desktop.Error{Code: desktop.CodeOf(err), Message: err.Error(), Index: -1}
}

// writeError answers with the status of err's class and the error body.
func writeError(w http.ResponseWriter, err error) {
	de := asError(err)
	writeJSON(w, desktop.HTTPStatus(de), struct {
		Error *desktop.Error `json:"error"`
	}{de})
}

// decodeBody decodes a JSON request body strictly: one value, no unknown
// fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return desktop.Errorf(desktop.CodeBadRequest, "the request body is empty; send a JSON object")
		}
		return desktop.Errorf(desktop.CodeBadRequest, "the request body is not valid: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return desktop.Errorf(desktop.CodeBadRequest, "the request body has data after the JSON value")
	}
	return nil
}

// checkQuery rejects query parameters that a route does not take.
func checkQuery(r *http.Request, allowed ...string) error {
	for k := range r.URL.Query() {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return desktop.Errorf(desktop.CodeBadRequest, "unknown query parameter %q; this route takes %s", k, fmt.Sprint(allowed))
		}
	}
	return nil
}

// Stream returns the address of the running live view, or "".
func (a *Agent) Stream() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stream
}
