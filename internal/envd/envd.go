// Package envd serves E2B's in-sandbox daemon protocol (envd) so that the
// unmodified e2b and @e2b/desktop SDKs drive a sandbox: the process and
// filesystem Connect services (/process.Process/*, /filesystem.Filesystem/*,
// JSON or binary protobuf, Connect or gRPC-Web), and the plain HTTP routes
// /files, /init, /envs and /metrics. GET /health is the host's.
//
// Processes run detached from the request that started them: a client
// that goes away only stops streaming. Only the Connect-Timeout-Ms of the
// Start request, a signal, or Close ends them. Filesystem operations act
// as the user of the request (HTTP Basic auth user name, or ?username= on
// /files), so the kernel checks that user's permissions and the user owns
// what they create.
package envd

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"connectrpc.com/connect"

	"github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem/filesystemconnect"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/process/processconnect"
	"github.com/cubicle-dev/cubicle/internal/proc"
)

// Version is the envd version this package implements, as the control
// plane reports it in envdVersion: the SDKs enable features by it (default
// user, CloseStdin, octet-stream and gzip uploads, file metadata, watch
// entries and network mounts).
const Version = "0.6.4"

// TagEnv is the environment variable that marks every process envd starts
// (and so whatever those start in turn, daemons included) with the
// service's id. Close kills whatever still carries it.
const TagEnv = "CUBICLE_ENVD"

// User is the account a request acts as.
type User struct {
	Name     string
	UID, GID uint32
	Home     string
	// SysProcAttr starts a process as the user (credentials, Pdeathsig).
	SysProcAttr *syscall.SysProcAttr
	// Do runs fn with the user's filesystem identity; nil runs it as is.
	Do func(fn func() error) error
}

func (u *User) do(fn func() error) error {
	if u.Do == nil {
		return fn()
	}
	return u.Do(fn)
}

// Config is what the service needs from its host.
type Config struct {
	// Token, when set, is the access token: required in X-Access-Token on
	// every request but /files, which also takes a URL signed with it.
	Token string
	// Lookup resolves a user name from a request; "" is the default user.
	// An error means the user is unknown or not allowed.
	Lookup func(name string) (*User, error)
	// Env returns the sandbox environment ("KEY=value") that every
	// process starts with, before the request's own variables.
	Env func() []string
	// StartProcess starts processes (a reaper's Start when the host is
	// pid 1); nil is exec.Cmd.Start.
	StartProcess func(*exec.Cmd) error
	// Logger is the service's logger; nil discards.
	Logger *slog.Logger
}

// Validate checks c.
func (c *Config) Validate() error {
	if c.Lookup == nil {
		return errors.New("envd: config: Lookup is required")
	}
	if c.Env == nil {
		return errors.New("envd: config: Env is required")
	}
	return nil
}

// Service is one sandbox's envd. Create it with New, serve it with
// Register, and Close it to kill its processes and watchers.
type Service struct {
	cfg   Config
	log   *slog.Logger
	tag   string // TagEnv=<id>, in the environment of every process
	procs *processes
	fs    *fileSystem

	mu         sync.Mutex
	extraEnv   map[string]string // from POST /init
	defaultUsr string            // from POST /init
	defaultDir string            // from POST /init
}

// New checks cfg and returns a service.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, extraEnv: map[string]string{}, tag: TagEnv + "=" + rand.Text()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.procs = newProcesses(s)
	s.fs = newFileSystem(s)
	return s, nil
}

// Register adds the envd routes to mux. The host serves GET /health
// (204 No Content, no token) itself.
func (s *Service) Register(mux *http.ServeMux) {
	opts := connect.WithInterceptors(&authInterceptor{token: s.cfg.Token})
	path, h := processconnect.NewProcessHandler(s.procs, opts)
	mux.Handle(path, h)
	path, h = filesystemconnect.NewFilesystemHandler(s.fs, opts)
	mux.Handle(path, h)
	mux.HandleFunc("GET /files", s.handleDownload)
	mux.HandleFunc("POST /files", s.handleUpload)
	mux.HandleFunc("POST /init", s.authed(s.handleInit))
	mux.HandleFunc("GET /envs", s.authed(s.handleEnvs))
	mux.HandleFunc("GET /metrics", s.authed(s.handleMetrics))
}

// Close kills the processes still running, and the daemons they left
// behind (found by TagEnv), stops the watchers and waits for both.
func (s *Service) Close(ctx context.Context) error {
	s.procs.close()
	s.fs.close()
	return proc.KillTagged(ctx, s.tag)
}

// env is the sandbox environment: the host's, then what /init set.
func (s *Service) env() []string {
	env := s.cfg.Env()
	s.mu.Lock()
	extra := maps.Clone(s.extraEnv)
	s.mu.Unlock()
	return mergeEnv(env, extra)
}

// mergeEnv returns env with the variables of set replacing or added.
func mergeEnv(env []string, set map[string]string) []string {
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

// user resolves the user named by a request ("" for the default).
func (s *Service) user(name string) (*User, error) {
	if name == "" {
		s.mu.Lock()
		name = s.defaultUsr
		s.mu.Unlock()
	}
	u, err := s.cfg.Lookup(name)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("invalid user %q: %w", name, err))
	}
	return u, nil
}

// rpcUser resolves the user of an RPC: the user name of HTTP Basic auth,
// else the default user.
func (s *Service) rpcUser(h http.Header) (*User, error) {
	name := ""
	if v, ok := strings.CutPrefix(h.Get("Authorization"), "Basic "); ok {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("the Authorization header is not valid Basic auth"))
		}
		name, _, _ = strings.Cut(string(raw), ":")
	}
	return s.user(name)
}

// tokenOK reports whether h carries the access token (or none is set).
func tokenOK(h http.Header, token string) bool {
	if token == "" {
		return true
	}
	got := h.Get("X-Access-Token")
	if got == "" {
		got, _ = strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

var errUnauthorized = errors.New("unauthorized access, please provide a valid access token in the X-Access-Token header")

// authInterceptor requires the access token on every RPC.
type authInterceptor struct{ token string }

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !tokenOK(req.Header(), a.token) {
			return nil, connect.NewError(connect.CodeUnauthenticated, errUnauthorized)
		}
		return next(ctx, req)
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if !tokenOK(conn.RequestHeader(), a.token) {
			return connect.NewError(connect.CodeUnauthenticated, errUnauthorized)
		}
		return next(ctx, conn)
	}
}

// authed requires the access token on a plain HTTP route.
func (s *Service) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !tokenOK(r.Header, s.cfg.Token) {
			writeHTTPError(w, http.StatusUnauthorized, errUnauthorized.Error())
			return
		}
		h(w, r)
	}
}
