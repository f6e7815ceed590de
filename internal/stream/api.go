package stream

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/httpjson"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// APIHandler serves the stream routes of the native API:
//
//	POST   /v1/sandboxes/{id}/stream             a new stream URL
//	DELETE /v1/sandboxes/{id}/stream/{token_id}  revoke one and close its streams
//	DELETE /v1/sandboxes/{id}/stream             revoke all of the sandbox's
func (s *Service) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/sandboxes/{id}/stream", s.authed(s.createURL))
	mux.Handle("DELETE /v1/sandboxes/{id}/stream/{token_id}", s.authed(s.revokeOne))
	mux.Handle("DELETE /v1/sandboxes/{id}/stream", s.authed(s.revokeAll))
	return mux
}

// Patterns are the ServeMux patterns APIHandler serves.
func Patterns() []string {
	return []string{
		"POST /v1/sandboxes/{id}/stream",
		"DELETE /v1/sandboxes/{id}/stream/{token_id}",
		"DELETE /v1/sandboxes/{id}/stream",
	}
}

type ownedHandler func(w http.ResponseWriter, r *http.Request, owner string) error

func (s *Service) authed(h ownedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		owner, err := s.auth.Authenticate(r.Context(), requestKey(r))
		if err == nil {
			err = h(w, r, owner)
		}
		if err != nil {
			s.writeError(w, r, err)
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
		return auth
	}
	return r.Header.Get("X-API-Key")
}

// tokenErrorBody is the error answer of a refused token: the shape of
// every error, with the stable reason beside the code.
type tokenErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Index   int    `json:"index"`
		Field   string `json:"field"`
		Reason  string `json:"reason"`
	} `json:"error"`
}

func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var te *TokenError
	if errors.As(err, &te) {
		var b tokenErrorBody
		b.Error.Code, b.Error.Message, b.Error.Index, b.Error.Field, b.Error.Reason =
			desktop.CodeUnauthorized, te.Msg, -1, "token", te.Reason
		httpjson.WriteJSON(w, http.StatusUnauthorized, b)
		return
	}
	httpjson.WriteError(w, r, s.log, err)
}

// running returns owner's sandbox id when it is running.
func (s *Service) running(r *http.Request, owner string) (sandbox.Record, error) {
	id := r.PathValue("id")
	rec, err := s.sb.Get(r.Context(), owner, id)
	if err != nil {
		return rec, err
	}
	if rec.State != sandbox.StateRunning {
		return rec, desktop.Errorf(desktop.CodeConflict, "sandbox %s is %s; only a running sandbox can be viewed (connect resumes a paused one)", id, rec.State)
	}
	return rec, nil
}

func (s *Service) createURL(w http.ResponseWriter, r *http.Request, owner string) error {
	var req apitype.StreamURLRequest
	if err := httpjson.Decode(w, r, &req, 64<<10, true); err != nil {
		return err
	}
	ttl := s.cfg.TTL
	if req.TTLS < 0 || time.Duration(req.TTLS)*time.Second > s.cfg.MaxTTL {
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "ttl_s",
			Message: fmt.Sprintf("ttl_s %d must be from 1 to %d seconds", req.TTLS, int(s.cfg.MaxTTL/time.Second))}
	}
	if req.TTLS > 0 {
		ttl = time.Duration(req.TTLS) * time.Second
	}
	switch req.Resize {
	case "":
		req.Resize = apitype.ResizeScale
	case apitype.ResizeOff, apitype.ResizeScale:
	case "remote":
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "resize",
			Message: "resize \"remote\" is not supported: a desktop keeps the resolution it was created with; use scale or off, or create the sandbox with the resolution you want"}
	default:
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "resize",
			Message: fmt.Sprintf("resize %q must be off or scale", req.Resize)}
	}
	rec, err := s.running(r, owner)
	if err != nil {
		return err
	}
	now := time.Now()
	c := Claims{ID: newTokenID(), Sandbox: rec.ID, ViewOnly: req.ViewOnly, Window: req.WindowID,
		IssuedAt: now, ExpiresAt: now.Add(ttl)}
	tok, err := s.signer.sign(c)
	if err != nil {
		return err
	}
	base := s.baseURL(r)
	page := base + "/view/" + rec.ID + "/" + tok
	q := url.Values{}
	q.Set("autoconnect", strconv.FormatBool(req.AutoConnect == nil || *req.AutoConnect))
	q.Set("resize", req.Resize)
	ws := "ws" + strings.TrimPrefix(base, "http") + "/view/" + rec.ID + "/" + tok + "/rfb?mode=" + c.Mode()
	return httpjson.WriteJSON(w, http.StatusCreated, apitype.StreamURL{
		URL: page + "?" + q.Encode(), WebSocketURL: ws, Token: apitype.Token(tok), TokenID: c.ID, SandboxID: rec.ID,
		ViewOnly: c.ViewOnly, ExpiresAt: c.ExpiresAt.UTC().Truncate(time.Millisecond),
	})
}

func (s *Service) revokeOne(w http.ResponseWriter, r *http.Request, owner string) error {
	tid := r.PathValue("token_id")
	if b, err := hex.DecodeString(tid); err != nil || len(b) != idBytes {
		return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "token_id",
			Message: fmt.Sprintf("token id %q is not the token_id of a stream URL (%d hex digits)", tid, 2*idBytes)}
	}
	rec, err := s.sb.Get(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.rev.revokeToken(rec.ID, tid, time.Now()); err != nil {
		return err
	}
	for _, ss := range s.open(func(ss *session) bool { return ss.claims.Sandbox == rec.ID && ss.claims.ID == tid }) {
		ss.end(endRevoked, "the stream URL was revoked")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) revokeAll(w http.ResponseWriter, r *http.Request, owner string) error {
	rec, err := s.sb.Get(r.Context(), owner, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.rev.revokeSandbox(rec.ID, time.Now()); err != nil {
		return err
	}
	for _, ss := range s.open(func(ss *session) bool { return ss.claims.Sandbox == rec.ID }) {
		ss.end(endRevoked, "every stream URL of the sandbox was revoked")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// baseURL is the server's URL as clients reach it.
func (s *Service) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
