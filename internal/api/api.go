// Package api is the native REST API of the server under /v1: sandbox
// lifecycle over package sandbox, authenticated with API keys. Its
// contract is openapi.yaml, served at /v1/openapi.yaml.
package api

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/httpjson"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI document of the API.
func OpenAPI() []byte { return openAPI }

// DefaultMaxBody bounds request bodies unless Config says otherwise.
const DefaultMaxBody = 1 << 20

// Config configures the API handler.
type Config struct {
	// Logger receives errors with their cause and id; nil discards them.
	Logger *slog.Logger
	// PublicURL is the base URL clients reach the server at (such as
	// https://cubicle.example.com), used for each sandbox's agent_url.
	// Empty derives it from each request's Host.
	PublicURL string
	// MaxBody bounds request bodies in bytes (default DefaultMaxBody).
	MaxBody int64
	// Defaults are the limits of a sandbox that asked for none, shown in
	// its limits.
	Defaults sandbox.Limits
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.MaxBody < 0 {
		return errors.New("api: config: MaxBody must not be negative")
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("api: config: public URL %q must start with http:// or https://", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Handler serves the /v1 API.
type Handler struct {
	cfg  Config
	log  *slog.Logger
	m    *sandbox.Manager
	keys *KeyManager
	mux  *http.ServeMux
}

// handlerFunc serves a request of an authenticated owner and returns its
// error; one place writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request, owner string) error

// NewHandler returns the API over m, with keys checked by keys.
func NewHandler(cfg Config, m *sandbox.Manager, keys *KeyManager) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil || keys == nil {
		return nil, errors.New("api: new handler: a manager and a key manager are required")
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, m: m, keys: keys, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
	for _, rt := range h.routes() {
		h.mux.Handle(rt.pattern, h.authed(rt.fn))
	}
	h.mux.Handle("/", h.authed(func(w http.ResponseWriter, r *http.Request, owner string) error {
		return desktop.Errorf(desktop.CodeNotFound, "no route %s %s; see GET /v1/openapi.yaml", r.Method, r.URL.Path)
	}))
	return h, nil
}

type routeDef struct {
	pattern string
	fn      handlerFunc
}

func (h *Handler) routes() []routeDef {
	return []routeDef{
		{"POST /v1/sandboxes", h.create},
		{"GET /v1/sandboxes", h.list},
		{"GET /v1/sandboxes/{id}", h.get},
		{"DELETE /v1/sandboxes/{id}", h.kill},
		{"POST /v1/sandboxes/{id}/timeout", h.setTimeout},
		{"PATCH /v1/sandboxes/{id}/metadata", h.setMetadata},
		{"POST /v1/sandboxes/{id}/connect", h.connect},
		{"POST /v1/sandboxes/{id}/pause", h.pause},
		{"PUT /v1/sandboxes/{id}/network", h.setNetwork},
		{"GET /v1/sandboxes/{id}/metrics", h.metrics},
	}
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h.mux.ServeHTTP(sw, r)
	h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
		"duration_ms", time.Since(start).Milliseconds())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authed checks the request's API key and passes its owner on.
func (h *Handler) authed(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner, err := h.keys.Authenticate(r.Context(), requestKey(r))
		if err == nil {
			err = fn(w, r, owner)
		}
		if err != nil {
			h.writeError(w, r, err)
		}
	})
}

// requestKey is the API key of r: "Authorization: Bearer <key>" or
// "X-API-Key: <key>".
func requestKey(r *http.Request) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, key, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(key)
		}
		return auth // not a bearer token: refused as malformed
	}
	return r.Header.Get("X-API-Key")
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpjson.WriteError(w, r, h.log, err)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	return httpjson.WriteJSON(w, status, v)
}

// decode reads a JSON body strictly into v (see httpjson.Decode). With
// optional, an empty body leaves v as it is.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	return httpjson.Decode(w, r, v, h.cfg.MaxBody, optional)
}
