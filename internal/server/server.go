// Package server is `cubicle serve`: the host daemon that keeps sandboxes
// in a store, runs them on a backend and serves the /v1 API and the proxy
// into sandboxes on one listener.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/internal/api"
	"github.com/cubicle-dev/cubicle/internal/e2bapi"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/store"
	"github.com/cubicle-dev/cubicle/internal/stream"
)

// ResolveFunc tells the proxy how to reach a running sandbox: where its
// agent listens, the access token it requires and whether its other ports
// are public; ok is false for a sandbox that is unknown or not running.
type ResolveFunc func(id string) (route sandbox.Route, ok bool)

// Config configures the server.
type Config struct {
	// Listen is the address of the API and the proxy (default
	// 127.0.0.1:8080).
	Listen string
	// StateDir holds the database; it is created with mode 0700.
	StateDir string
	// Domain routes requests for Host "<port>-<id>.<Domain>" to the
	// proxy; empty turns host routing off.
	Domain string
	// TLSCert and TLSKey are PEM files; with both the server speaks HTTPS.
	TLSCert, TLSKey string
	// PublicURL is the base URL clients reach the server at, used in each
	// sandbox's agent_url; empty derives it from each request.
	PublicURL string
	// Agent is the cubicle binary every sandbox runs as its pid 1
	// (default: this executable).
	Agent string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// ShutdownTimeout bounds the wait for requests in flight when the
	// server stops (default 10s).
	ShutdownTimeout time.Duration
	// ReadyTimeout bounds the wait for a new sandbox's desktop (default
	// 3 minutes).
	ReadyTimeout time.Duration
	// KeepKilled is how long killed sandboxes stay listed (default 24h).
	KeepKilled time.Duration
	// NewProxy builds the handler that forwards requests into sandboxes
	// (/sandboxes/{id}/agent/..., Host routing and E2b-Sandbox-Id). Nil
	// answers such requests 503.
	NewProxy func(resolve ResolveFunc) (http.Handler, error)
	// DialContext reaches sandbox agents; nil uses a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// SandboxDefaults are the limits the backend gives a sandbox that asks
	// for none; E2B's API reports them as cpuCount, memoryMB, diskSizeMB.
	SandboxDefaults sandbox.Limits
	// NoVNCDir holds noVNC for the live view (default /usr/share/novnc,
	// Debian's novnc package).
	NoVNCDir string
	// StreamTTL is the life of a live-view URL unless its request says
	// (default 1 hour).
	StreamTTL time.Duration
	// Mounts are more handlers served beside the APIs (see Mount); one at
	// "/" takes the requests that nothing else claims.
	Mounts []Mount
	// E2BDenyPublicTraffic makes the sandboxes created through E2B's API
	// ask for the access token on every port, as if each had been created
	// with network.allowPublicTraffic false. By default, as on E2B, their
	// ports other than the agent's are public unless the request says so.
	E2BDenyPublicTraffic bool
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("server: config: listen address %q: %w", c.Listen, err)
	}
	if c.StateDir == "" {
		return errors.New("server: config: the state directory is not set")
	}
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return fmt.Errorf("server: config: state directory: %w", err)
	}
	c.StateDir = dir
	c.Domain = strings.TrimSuffix(strings.ToLower(c.Domain), ".")
	if c.Domain != "" && !validDomain(c.Domain) {
		return fmt.Errorf("server: config: domain %q is not a DNS name such as sandbox.example.com", c.Domain)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("server: config: give both a TLS certificate and its key, or neither")
	}
	if c.ShutdownTimeout < 0 || c.ReadyTimeout < 0 || c.KeepKilled < 0 {
		return errors.New("server: config: durations must not be negative")
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Agent == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("server: config: path of the agent binary: %w", err)
		}
		c.Agent = exe
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server is the host daemon. Stopping it leaves every sandbox running;
// the next server on the same state directory and backend adopts them.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	manager  *sandbox.Manager
	keys     *api.KeyManager
	api      http.Handler
	e2b      http.Handler
	stream   *stream.Service
	mux      http.Handler // everything but the proxy (faces.go)
	proxy    http.Handler
	firstKey string

	mu     sync.Mutex
	used   bool // Serve was called
	closed bool
}

// New opens the state directory and wires the server; on the first start
// it issues an API key (see FirstKey). Call Run or Serve to serve, or
// Close to release it without serving.
func New(cfg Config, backend sandbox.Backend, templates sandbox.Templates) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(cfg.StateDir, "cubicle.db"))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: st, keys: api.NewKeyManager(st)}
	if err := s.wire(ctx, backend, templates); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) wire(ctx context.Context, backend sandbox.Backend, templates sandbox.Templates) error {
	m, err := sandbox.NewManager(sandbox.Config{
		Agent:        s.cfg.Agent,
		Logger:       s.log,
		ReadyTimeout: s.cfg.ReadyTimeout,
		KeepKilled:   s.cfg.KeepKilled,
		DialContext:  s.cfg.DialContext,
		Unrouted:     s.unrouted,
	}, backend, s.store, templates)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.manager = m
	if s.firstKey, err = s.keys.Bootstrap(ctx); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if s.api, err = api.NewHandler(api.Config{Logger: s.log, PublicURL: s.cfg.PublicURL, Defaults: s.cfg.SandboxDefaults}, m, s.keys); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if s.e2b, err = e2bapi.NewHandler(e2bapi.Config{
		Logger: s.log, Domain: s.cfg.Domain, Defaults: s.cfg.SandboxDefaults,
		DenyPublicTraffic: s.cfg.E2BDenyPublicTraffic,
	}, m, s.keys); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := s.wireLiveView(m); err != nil {
		return err
	}
	if s.mux, err = s.buildMux(); err != nil {
		return err
	}
	if s.cfg.NewProxy != nil {
		if s.proxy, err = s.cfg.NewProxy(m.Route); err != nil {
			return fmt.Errorf("server: proxy: %w", err)
		}
	}
	return nil
}

// FirstKey is the API key issued because the store had none, or "". It
// is shown once, to be printed for the operator.
func (s *Server) FirstKey() string { return s.firstKey }

// Keys manages the server's API keys.
func (s *Server) Keys() *api.KeyManager { return s.keys }

// Run listens on Config.Listen and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		s.Close()
		return fmt.Errorf("server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve adopts the sandboxes that still run, then serves on ln until ctx
// ends, and shuts down: requests in flight get Config.ShutdownTimeout to
// finish, creations still running are cut short (and what they made is
// destroyed), and the store is closed. Sandboxes keep running. Serve
// closes ln and returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.used || s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("server: serve: the server was already used")
	}
	s.used = true
	s.mu.Unlock()
	defer s.Close()

	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("server: tls: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := s.manager.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("server: %w", err)
	}
	served := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.cfg.TLSCert != "", "domain", s.cfg.Domain)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("requests still running at the shutdown deadline; closing their connections", "error", err)
		hs.Close()
	}
	if serveErr == nil {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if c, ok := s.proxy.(io.Closer); ok {
		if err := c.Close(); err != nil {
			s.log.Warn("close proxy", "error", err)
		}
	}
	s.log.Info("stopped; sandboxes keep running")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("server: serve: %w", serveErr)
	}
	return nil
}

// Close stops the manager (leaving sandboxes running) and closes the
// store. Serve calls it on its way out; call it yourself only when you do
// not serve.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if s.stream != nil {
		s.stream.Close() // ends the open live views
	}
	err := s.manager.Close()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// unrouted cuts the proxy's connections to a sandbox that stopped being
// reachable, so that open streams end at once instead of hanging on an
// address that is gone.
func (s *Server) unrouted(id string) {
	s.log.Debug("cutting the proxy's connections to a sandbox that stopped", "sandbox_id", id)
	if c, ok := s.proxy.(interface{ CloseSandbox(id string) }); ok {
		c.CloseSandbox(id)
	}
}
