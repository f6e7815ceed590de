package stream

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Stable reasons a stream token is refused. They are part of the wire
// contract (the "reason" of an error answer and the start of a WebSocket
// close reason): add, never rename.
const (
	ReasonTokenInvalid = "token_invalid" // malformed, or its signature does not match
	ReasonTokenExpired = "token_expired"
	ReasonTokenRevoked = "token_revoked"
	ReasonWrongSandbox = "token_wrong_sandbox"
	ReasonWrongMode    = "token_wrong_mode"
)

// TokenError is why a stream token was refused. It is of class
// desktop.ErrUnauthorized.
type TokenError struct {
	Reason string
	Msg    string
}

func (e *TokenError) Error() string { return "stream: " + e.Reason + ": " + e.Msg }

// Is makes a TokenError match desktop.ErrUnauthorized and a TokenError
// with the same reason.
func (e *TokenError) Is(target error) bool {
	if t, ok := target.(*TokenError); ok {
		return t.Reason == e.Reason
	}
	return target == desktop.ErrUnauthorized
}

func tokenErr(reason, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Claims is what a stream token grants: a view of one sandbox, in one
// mode, until it expires or is revoked.
type Claims struct {
	// ID names the token for revocation: 24 hex characters.
	ID string
	// Sandbox is the id of the sandbox it opens.
	Sandbox string
	// ViewOnly drops the viewer's input.
	ViewOnly bool
	// Window, when not 0, shows only this X window.
	Window uint32
	// IssuedAt and ExpiresAt bound its life (millisecond precision).
	IssuedAt, ExpiresAt time.Time
}

// Mode is "view" for a view-only token and "control" otherwise.
func (c Claims) Mode() string {
	if c.ViewOnly {
		return ModeView
	}
	return ModeControl
}

// The two modes of a stream.
const (
	ModeView    = "view"
	ModeControl = "control"
)

// A token is base64url(payload || HMAC-SHA256(key, payload)) with the
// payload: version (1), token id (12), flags (1: bit 0 view-only), window
// (4), issued-at and expires-at in Unix milliseconds (8 + 8), the sandbox
// id (the rest).
const (
	tokenVersion = 1
	idBytes      = 12
	fixedPayload = 1 + idBytes + 1 + 4 + 8 + 8
	macBytes     = sha256.Size
	maxSandboxID = 64
)

// signer signs and checks stream tokens with one secret key.
type signer struct{ key []byte }

// newTokenID returns a fresh token id.
func newTokenID() string {
	var b [idBytes]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sign encodes c into a token. c.ID must come from newTokenID.
func (s signer) sign(c Claims) (string, error) {
	id, err := hex.DecodeString(c.ID)
	if err != nil || len(id) != idBytes {
		return "", fmt.Errorf("stream: sign: token id %q is not %d hex bytes", c.ID, idBytes)
	}
	if c.Sandbox == "" || len(c.Sandbox) > maxSandboxID {
		return "", fmt.Errorf("stream: sign: sandbox id %q", c.Sandbox)
	}
	p := make([]byte, 0, fixedPayload+len(c.Sandbox)+macBytes)
	p = append(p, tokenVersion)
	p = append(p, id...)
	var flags byte
	if c.ViewOnly {
		flags |= 1
	}
	p = append(p, flags)
	p = binary.BigEndian.AppendUint32(p, c.Window)
	p = binary.BigEndian.AppendUint64(p, uint64(c.IssuedAt.UnixMilli()))
	p = binary.BigEndian.AppendUint64(p, uint64(c.ExpiresAt.UnixMilli()))
	p = append(p, c.Sandbox...)
	p = append(p, s.mac(p)...)
	return base64.RawURLEncoding.EncodeToString(p), nil
}

func (s signer) mac(p []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write(p)
	return h.Sum(nil)
}

// parse checks token's form, signature and expiry at now and returns its
// claims. Revocation, sandbox and mode are the caller's to check.
func (s signer) parse(token string, now time.Time) (Claims, error) {
	bad := tokenErr(ReasonTokenInvalid, "the stream token is malformed or was altered; ask for a new stream URL")
	if len(token) > 2*(fixedPayload+maxSandboxID+macBytes) {
		return Claims{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) <= fixedPayload+macBytes {
		return Claims{}, bad
	}
	p, sum := b[:len(b)-macBytes], b[len(b)-macBytes:]
	if !hmac.Equal(sum, s.mac(p)) || p[0] != tokenVersion || p[1+idBytes]&^1 != 0 {
		return Claims{}, bad
	}
	c := Claims{
		ID:        hex.EncodeToString(p[1 : 1+idBytes]),
		ViewOnly:  p[1+idBytes]&1 != 0,
		Window:    binary.BigEndian.Uint32(p[2+idBytes:]),
		IssuedAt:  time.UnixMilli(int64(binary.BigEndian.Uint64(p[6+idBytes:]))),
		ExpiresAt: time.UnixMilli(int64(binary.BigEndian.Uint64(p[14+idBytes:]))),
		Sandbox:   string(p[fixedPayload:]),
	}
	if !now.Before(c.ExpiresAt) {
		return Claims{}, tokenErr(ReasonTokenExpired, "the stream URL expired at %s; ask for a new one",
			c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return c, nil
}
