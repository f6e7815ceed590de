// Package e2bapi is E2B's control plane on the server: the REST API that
// the unmodified e2b and @e2b/desktop SDKs call (POST /v2/sandboxes,
// /sandboxes/{id}/...), over the same sandbox.Manager and keys as /v1.
// One store, one lifecycle, two faces: a sandbox made here is listed,
// killed and reached through /v1 as well, and the other way round.
//
// The wire follows E2B's OpenAPI document: camelCase fields (sandboxID,
// envdVersion, ...; allow_internet_access on input), errors as
// {"code": <status>, "message": "..."}, X-API-KEY auth, the list's next
// page in X-Next-Token.
package e2bapi

import (
	"context"
	"crypto/rand"
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
	"github.com/cubicle-dev/cubicle/internal/envd"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// EnvdVersion is the envd version reported for every sandbox: the
// version of E2B's in-sandbox daemon whose features the agent serves.
// The SDK gates features on it (0.4.0: the sandbox picks the default
// user; 0.5.7: octet-stream uploads).
const EnvdVersion = envd.Version

// ClientID is the clientID of every sandbox; E2B's schema requires it and
// no SDK reads it.
const ClientID = "cubicle"

// DefaultMaxBody bounds request bodies unless Config says otherwise.
const DefaultMaxBody = 1 << 20

// Authenticator checks API keys; *api.KeyManager is one.
type Authenticator interface {
	// Authenticate returns the owner of key, or an error of class
	// desktop.ErrUnauthorized.
	Authenticate(ctx context.Context, key string) (owner string, err error)
}

// Config configures the handler.
type Config struct {
	// Logger receives internal errors with their cause and id; nil
	// discards them.
	Logger *slog.Logger
	// Domain is returned as every sandbox's domain: the SDK reaches port
	// P of sandbox ID at <P>-<ID>.<Domain> (the stream URL, getHost).
	// Empty returns null, and the SDK falls back to E2B_DOMAIN.
	Domain string
	// EnvdVersion is reported as every sandbox's envdVersion (default
	// EnvdVersion).
	EnvdVersion string
	// Defaults are the limits of a sandbox that asked for none, shown as
	// cpuCount, memoryMB and diskSizeMB.
	Defaults sandbox.Limits
	// TemplateAliases maps template names the SDKs send to templates of
	// this server (default: "base", the SDK's default, is "desktop").
	TemplateAliases map[string]string
	// MaxBody bounds request bodies in bytes (default DefaultMaxBody).
	MaxBody int64
	// DenyPublicTraffic makes every sandbox created here behave as if
	// its request had network.allowPublicTraffic false: all its ports ask
	// for the access token (trafficAccessToken). By default, as on E2B,
	// ports other than envd's are public unless the request says false.
	DenyPublicTraffic bool
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	if c.MaxBody < 0 {
		return errors.New("e2bapi: config: MaxBody must not be negative")
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.EnvdVersion == "" {
		c.EnvdVersion = EnvdVersion
	}
	if !semver(c.EnvdVersion) {
		return fmt.Errorf("e2bapi: config: envd version %q is not of the form MAJOR.MINOR.PATCH", c.EnvdVersion)
	}
	c.Domain = strings.TrimSuffix(strings.ToLower(c.Domain), ".")
	if c.TemplateAliases == nil {
		c.TemplateAliases = map[string]string{"base": sandbox.DefaultTemplate}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func semver(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 6 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// Handler serves E2B's control plane.
type Handler struct {
	cfg  Config
	log  *slog.Logger
	m    *sandbox.Manager
	keys Authenticator
	mux  *http.ServeMux
}

// handlerFunc serves a request of an authenticated owner and returns its
// error; one place writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request, owner string) error

// NewHandler returns E2B's control plane over m, with keys checked by keys.
func NewHandler(cfg Config, m *sandbox.Manager, keys Authenticator) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil || keys == nil {
		return nil, errors.New("e2bapi: new handler: a manager and an authenticator are required")
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, m: m, keys: keys, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	for _, rt := range h.routes() {
		h.mux.Handle(rt.pattern, h.authed(rt.fn))
	}
	for _, prefix := range Prefixes {
		h.mux.Handle(prefix, h.authed(func(w http.ResponseWriter, r *http.Request, owner string) error {
			return desktop.Errorf(desktop.CodeNotFound, "no route %s %s on this server", r.Method, r.URL.Path)
		}))
	}
	return h, nil
}

// Prefixes are the paths the handler serves, for a mux to mount it at
// (with GET /health). Under /sandboxes/ the server sends
// /sandboxes/{id}/agent/ and /sandboxes/{id}/port/ to its proxy.
var Prefixes = []string{"/v2/sandboxes", "/v2/sandboxes/", "/sandboxes", "/sandboxes/"}

type routeDef struct {
	pattern string
	fn      handlerFunc
}

func (h *Handler) routes() []routeDef {
	return []routeDef{
		{"POST /v2/sandboxes", h.create},
		{"GET /v2/sandboxes", h.list},
		{"POST /v2/sandboxes/{id}/connect", h.connect},
		{"GET /sandboxes", h.listRunning},
		{"GET /sandboxes/{id}", h.get},
		{"DELETE /sandboxes/{id}", h.kill},
		{"POST /sandboxes/{id}/timeout", h.setTimeout},
		{"GET /sandboxes/{id}/metrics", h.metrics},
		{"POST /sandboxes/{id}/pause", h.pause},
		{"POST /sandboxes/{id}/resume", h.resume},
		{"PUT /sandboxes/{id}/network", h.setNetwork},
	}
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

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

// requestKey is the API key of r: "X-API-KEY: <key>" as E2B's SDKs send
// it, or "Authorization: Bearer <key>".
func requestKey(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k
	}
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(key)
	}
	return ""
}

// Error is an error body as E2B's API writes it: the SDK tests code (the
// HTTP status) in the body, not the status line.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeError writes err with the status of its class. An internal error
// gets an id that ties the answer to the log line with its cause.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := desktop.HTTPStatus(err)
	msg := err.Error()
	var de *desktop.Error
	if errors.As(err, &de) {
		msg = de.Message
	}
	if status == http.StatusInternalServerError {
		id := errorID()
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error_id", id, "error", err)
		msg = fmt.Sprintf("internal error (error id %s); the server's log has the details", id)
	}
	writeJSON(w, status, Error{Code: status, Message: msg})
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

func badRequest(format string, args ...any) error {
	return desktop.Errorf(desktop.CodeInvalid, format, args...)
}

// decode reads a JSON body into v. Fields this server does not know are
// ignored, as E2B's API ignores them, so that newer SDKs keep working;
// known fields must have their types. With optional, an empty body
// leaves v as it is.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err := dec.Decode(v); err != nil {
		var (
			tooBig  *http.MaxBytesError
			typeErr *json.UnmarshalTypeError
		)
		switch {
		case optional && errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &tooBig):
			return desktop.Errorf(desktop.CodeTooLarge, "request body is over %d bytes", h.cfg.MaxBody)
		case errors.Is(err, io.EOF):
			return badRequest("request body is empty; send a JSON object")
		case errors.As(err, &typeErr):
			return badRequest("field %q has the wrong type: a JSON %s", typeErr.Field, typeErr.Value)
		}
		return badRequest("request body is not valid JSON: %v", err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return badRequest("request body has data after the JSON value; send exactly one")
	}
	return nil
}

// seconds turns a timeout in seconds into a duration within the bounds
// of a sandbox's life.
func seconds(field string, s int64) (time.Duration, error) {
	lo, hi := int64(sandbox.MinTimeout/time.Second), int64(sandbox.MaxTimeout/time.Second)
	if s < lo || s > hi {
		return 0, badRequest("%s must be from %d to %d seconds, not %d", field, lo, hi, s)
	}
	return time.Duration(s) * time.Second, nil
}
