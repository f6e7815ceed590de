// Package stream is the live view of sandbox desktops in the browser.
//
// An owner asks for a stream URL (POST /v1/sandboxes/{id}/stream): a page
// at /view/{id}/{token} that runs noVNC (served from the host's novnc
// package under /view/novnc/) and opens a WebSocket to
// /view/{id}/{token}/rfb. The token is signed with a secret of the server
// and names one sandbox, one mode (view or control), an optional window
// and an expiry; it can be revoked alone or with all of its sandbox's.
//
// The WebSocket is bridged to the agent inside the sandbox (GET
// /v1/stream/rfb upgraded to a raw RFB tunnel to its loopback x11vnc); no
// websockify runs anywhere. What the viewer sends goes through a Filter
// that follows the RFB messages and, in view mode, drops every input. A
// stream ends at once when its sandbox stops running (killed, paused or
// timed out), its token expires or is revoked, or the server stops.
package stream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// DefaultNoVNCDir is where Debian's novnc package puts noVNC.
const DefaultNoVNCDir = "/usr/share/novnc"

// Sandboxes is what the live view needs of the sandbox manager.
type Sandboxes interface {
	// Get returns owner's sandbox id, or an error of class not found.
	Get(ctx context.Context, owner, id string) (sandbox.Record, error)
	// Route tells where the agent of a running sandbox listens and its
	// access token; ok is false when the sandbox is not running.
	Route(id string) (r sandbox.Route, ok bool)
}

// Authenticator checks an API key and returns its owner.
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (owner string, err error)
}

// Config configures the live view.
type Config struct {
	// StateDir holds the signing secret and the revoked tokens (in its
	// "stream" subdirectory, mode 0700).
	StateDir string
	// TTL is the life of a stream URL when the request does not say
	// (default 1 hour); MaxTTL bounds what a request may ask for (default
	// 24 hours).
	TTL, MaxTTL time.Duration
	// NoVNCDir holds noVNC (default DefaultNoVNCDir). When it is missing
	// the view pages answer 503 and say how to install it.
	NoVNCDir string
	// PublicURL is the base of the URLs handed out; empty derives it from
	// each request.
	PublicURL string
	// DialContext reaches sandbox agents; nil uses a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// CheckInterval is how often open streams check that their sandbox
	// still runs (default 250ms).
	CheckInterval time.Duration
	// Logger receives the streams' logs; nil discards them.
	Logger *slog.Logger
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.StateDir == "" {
		return errors.New("stream: config: the state directory is not set")
	}
	if c.TTL < 0 || c.MaxTTL < 0 || c.CheckInterval < 0 {
		return errors.New("stream: config: durations must not be negative")
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 24 * time.Hour
	}
	if c.TTL == 0 {
		c.TTL = time.Hour
	}
	if c.TTL > c.MaxTTL {
		return fmt.Errorf("stream: config: the stream URL lifetime %v is longer than the maximum %v", c.TTL, c.MaxTTL)
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 250 * time.Millisecond
	}
	if c.NoVNCDir == "" {
		c.NoVNCDir = DefaultNoVNCDir
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("stream: config: public URL %q must start with http:// or https://", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.DialContext == nil {
		c.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Service issues stream URLs and serves the view pages and the bridge.
// Close it when the server stops: it ends every open stream.
type Service struct {
	cfg    Config
	log    *slog.Logger
	sb     Sandboxes
	auth   Authenticator
	signer signer
	rev    *revocations
	novnc  fs.FS // nil when NoVNCDir is missing

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup     // sessions and the watcher
	stop     context.CancelFunc // stops the watcher; nil until the first stream
}

// New returns the live view over sb, with API keys checked by auth.
func New(cfg Config, sb Sandboxes, auth Authenticator) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sb == nil || auth == nil {
		return nil, errors.New("stream: new: sandboxes and an authenticator are required")
	}
	dir := filepath.Join(cfg.StateDir, "stream")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	key, err := loadSecret(filepath.Join(dir, "secret"))
	if err != nil {
		return nil, err
	}
	rev, err := loadRevocations(filepath.Join(dir, "revoked.json"), cfg.MaxTTL)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, sb: sb, auth: auth, signer: signer{key: key}, rev: rev,
		sessions: map[*session]struct{}{}}
	if st, err := os.Stat(filepath.Join(cfg.NoVNCDir, "core", "rfb.js")); err == nil && !st.IsDir() {
		s.novnc = os.DirFS(cfg.NoVNCDir)
	} else {
		s.log.Warn("the live view needs noVNC: install it with `apt-get install novnc` or point --novnc-dir at it",
			"novnc_dir", cfg.NoVNCDir)
	}
	return s, nil
}

// NoVNC reports whether noVNC was found.
func (s *Service) NoVNC() bool { return s.novnc != nil }

// Close ends every open stream and waits for them.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	open := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, ss := range open {
		ss.end(endShutdown, "the server is stopping")
	}
	s.wg.Wait()
	return nil
}

// watch ends the streams of sandboxes that stopped running and of tokens
// that expired.
func (s *Service) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, ss := range s.open(func(*session) bool { return true }) {
				if _, ok := s.sb.Route(ss.claims.Sandbox); !ok {
					ss.end(endSandboxGone, fmt.Sprintf("sandbox %s stopped running", ss.claims.Sandbox))
				} else if !now.Before(ss.claims.ExpiresAt) {
					ss.end(endExpired, "the stream URL expired")
				}
			}
		}
	}
}

// open returns the open sessions that match keep.
func (s *Service) open(keep func(*session) bool) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for ss := range s.sessions {
		if keep(ss) {
			out = append(out, ss)
		}
	}
	return out
}

// add registers ss; false once the service is closed.
func (s *Service) add(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.stop == nil {
		ctx, stop := context.WithCancel(context.Background())
		s.stop = stop
		s.wg.Go(func() { s.watch(ctx) })
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Service) remove(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.wg.Done()
}

// Streams is the number of open streams of sandbox id ("" for all).
func (s *Service) Streams(id string) int {
	return len(s.open(func(ss *session) bool { return id == "" || ss.claims.Sandbox == id }))
}
