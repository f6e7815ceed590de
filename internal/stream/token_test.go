package stream

import (
	"encoding/base64"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/desktop"
)

const sbxA, sbxB = "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"

func TestTokenRoundTrip(t *testing.T) {
	s := signer{key: []byte("0123456789abcdef0123456789abcdef")}
	now := time.UnixMilli(1_700_000_000_123)
	want := Claims{ID: newTokenID(), Sandbox: sbxA, ViewOnly: true, Window: 0x1e00004, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	tok, err := s.sign(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.parse(tok, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
}

// TestTokenRefused checks every way a token is refused and its stable
// reason.
func TestTokenRefused(t *testing.T) {
	dir := t.TempDir()
	rev, err := loadRevocations(filepath.Join(dir, "revoked.json"), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{signer: signer{key: []byte("0123456789abcdef0123456789abcdef")}, rev: rev}
	now := time.Now()
	mint := func(c Claims) string {
		t.Helper()
		if c.ID == "" {
			c.ID = newTokenID()
		}
		if c.IssuedAt.IsZero() {
			c.IssuedAt = now
		}
		if c.ExpiresAt.IsZero() {
			c.ExpiresAt = now.Add(time.Hour)
		}
		tok, err := svc.signer.sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(Claims{Sandbox: sbxA, ViewOnly: true})
	revoked := mint(Claims{ID: "00112233445566778899aabb", Sandbox: sbxA})
	if err := rev.revokeToken(sbxA, "00112233445566778899aabb", now); err != nil {
		t.Fatal(err)
	}
	oldB := mint(Claims{Sandbox: sbxB, IssuedAt: now.Add(-time.Minute)})
	if err := rev.revokeSandbox(sbxB, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	newB := mint(Claims{Sandbox: sbxB})
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flipped := append([]byte(nil), raw...)
	flipped[1+idBytes] ^= 1 // view-only -> control
	other := signer{key: []byte("another key, same length, 32 b!!")}
	forged, _ := other.sign(Claims{ID: newTokenID(), Sandbox: sbxA, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})

	tests := []struct {
		name, sandbox, token, mode string
		reason                     string // "" when accepted
	}{
		{"good", sbxA, good, "", ""},
		{"good in its mode", sbxA, good, ModeView, ""},
		{"after revoking all, a new one", sbxB, newB, ModeControl, ""},
		{"expired", sbxA, mint(Claims{Sandbox: sbxA, ExpiresAt: now.Add(-time.Millisecond)}), "", ReasonTokenExpired},
		{"wrong sandbox", sbxB, good, "", ReasonWrongSandbox},
		{"wrong mode", sbxA, good, ModeControl, ReasonWrongMode},
		{"tampered mode", sbxA, base64.RawURLEncoding.EncodeToString(flipped), "", ReasonTokenInvalid},
		{"tampered last character", sbxA, good[:len(good)-1] + string("AB"[len(good)%2]), "", ReasonTokenInvalid},
		{"signed with another key", sbxA, forged, "", ReasonTokenInvalid},
		{"truncated", sbxA, good[:40], "", ReasonTokenInvalid},
		{"not base64", sbxA, "not a token!", "", ReasonTokenInvalid},
		{"empty", sbxA, "", "", ReasonTokenInvalid},
		{"revoked", sbxA, revoked, "", ReasonTokenRevoked},
		{"revoked with its sandbox", sbxB, oldB, "", ReasonTokenRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.authorize(tt.sandbox, tt.token, tt.mode)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != tt.reason {
				t.Fatalf("error %v, want reason %s", err, tt.reason)
			}
			if !errors.Is(err, desktop.ErrUnauthorized) || !errors.Is(err, &TokenError{Reason: tt.reason}) {
				t.Errorf("%v is not of class unauthorized and its reason", err)
			}
		})
	}

	// Revocations survive a restart.
	again, err := loadRevocations(filepath.Join(dir, "revoked.json"), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svc.rev = again
	for _, tok := range []string{revoked, oldB} {
		sb := sbxA
		if tok == oldB {
			sb = sbxB
		}
		if _, err := svc.authorize(sb, tok, ""); !errors.Is(err, &TokenError{Reason: ReasonTokenRevoked}) {
			t.Errorf("after reloading: %v, want revoked", err)
		}
	}
}

func TestSecretKept(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	a, err := loadSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != secretBytes || string(a) != string(b) {
		t.Errorf("secret not kept: %d bytes, same=%v", len(a), string(a) == string(b))
	}
}
