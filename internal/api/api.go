// Package api is the native REST API of the server under /v1: sandbox
// lifecycle over package sandbox, authenticated with API keys. Its
// contract is openapi.yaml, served at /v1/openapi.yaml.
package api

import (
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
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

// writeError writes err as {"error": {...}} with the status of its class.
// Internal errors get an id that ties the answer to the log line with the
// cause; their message stays in the log.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := desktop.HTTPStatus(err)
	var de *desktop.Error
	if !errors.As(err, &de) {
		de = &desktop.Error{Code: desktop.CodeOf(err), Message: err.Error(), Index: -1}
	}
	if de.Code == desktop.CodeInternal || status == http.StatusInternalServerError {
		id := errorID()
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error_id", id, "error", err)
		de = &desktop.Error{Code: desktop.CodeInternal, Index: -1,
			Message: fmt.Sprintf("internal error (error id %s); the server log has the details", id)}
		status = http.StatusInternalServerError
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cubicle"`)
	}
	writeJSON(w, status, map[string]*desktop.Error{"error": de})
}

func errorID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body strictly into v: no unknown fields, nothing
// after it, at most MaxBody bytes. With optional, an empty body leaves v
// as it is.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, h.cfg.MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if optional && errors.Is(err, io.EOF) {
			return nil
		}
		return h.decodeError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return h.decodeError(err)
		}
		return desktop.Errorf(desktop.CodeBadRequest, "request body has data after the JSON object; send exactly one object")
	}
	return nil
}

func (h *Handler) decodeError(err error) error {
	var (
		tooBig  *http.MaxBytesError
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return desktop.Errorf(desktop.CodeTooLarge, "request body is over %d bytes", h.cfg.MaxBody)
	case errors.Is(err, io.EOF):
		return desktop.Errorf(desktop.CodeBadRequest, "request body is empty; send a JSON object")
	case errors.As(err, &syntax):
		return desktop.Errorf(desktop.CodeBadRequest, "request body is not valid JSON: %v (at byte %d)", err, syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return desktop.Errorf(desktop.CodeBadRequest, "request body is not valid JSON: it ends in the middle of a value")
	case errors.As(err, &typeErr):
		return &desktop.Error{Code: desktop.CodeBadRequest, Index: -1, Field: typeErr.Field,
			Message: fmt.Sprintf("field %q must be %s, not a JSON %s", typeErr.Field, jsonType(typeErr.Type.String()), typeErr.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &desktop.Error{Code: desktop.CodeBadRequest, Index: -1, Field: name,
			Message: fmt.Sprintf("unknown field %q; see GET /v1/openapi.yaml", name)}
	}
	return desktop.Errorf(desktop.CodeBadRequest, "bad request body: %v", err)
}

// jsonType names a Go type the way a JSON user thinks of it.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}
