package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// KeyPrefix starts every API key; 40 lowercase hex digits follow it.
const KeyPrefix = "cbk_"

// E2BKeyPrefix is the prefix E2B's SDKs expect. The same key works with
// either prefix: cbk_<hex> and e2b_<hex> are one key.
const E2BKeyPrefix = "e2b_"

// keyHexLen is the number of hex digits after KeyPrefix.
const keyHexLen = 40

// DefaultOwner owns the key made on the first start.
const DefaultOwner = "default"

// KeyManager issues, lists, revokes and checks API keys. The store keeps
// only a SHA-256 hash of each key and its first characters.
type KeyManager struct {
	store sandbox.KeyStore
}

// NewKeyManager returns a key manager on store.
func NewKeyManager(store sandbox.KeyStore) *KeyManager {
	return &KeyManager{store: store}
}

// KeyInfo is what can be known of a key after it was issued.
type KeyInfo struct {
	ID      string
	Owner   string
	Prefix  string
	Created time.Time
	Revoked time.Time // zero while the key works
}

// ValidKey reports whether s has the form of an API key, with either
// prefix.
func ValidKey(s string) bool {
	hexPart, ok := strings.CutPrefix(canonicalKey(s), KeyPrefix)
	if !ok || len(hexPart) != keyHexLen {
		return false
	}
	for i := range len(hexPart) {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// E2BKey returns key in the form E2B's SDKs accept (E2B_API_KEY):
// the same secret behind E2BKeyPrefix.
func E2BKey(key string) string {
	if rest, ok := strings.CutPrefix(key, KeyPrefix); ok {
		return E2BKeyPrefix + rest
	}
	return key
}

// canonicalKey turns the E2B form of a key into the native one.
func canonicalKey(key string) string {
	if rest, ok := strings.CutPrefix(key, E2BKeyPrefix); ok {
		return KeyPrefix + rest
	}
	return key
}

// hashKey hashes the native form of key, so both forms find one record.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(canonicalKey(key)))
	return hex.EncodeToString(sum[:])
}

func validOwner(owner string) error {
	if owner == "" || len(owner) > 64 {
		return desktop.Errorf(desktop.CodeInvalid, "an owner name has 1 to 64 characters, not %d", len(owner))
	}
	for _, c := range owner {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._@-", c)) {
			return desktop.Errorf(desktop.CodeInvalid, "owner %q has a character other than letters, digits and . _ @ -", owner)
		}
	}
	return nil
}

// Create issues a new key for owner and returns it; it is never shown
// again. Every key of the same owner sees the same sandboxes.
func (m *KeyManager) Create(ctx context.Context, owner string) (string, error) {
	if err := validOwner(owner); err != nil {
		return "", err
	}
	var secret [keyHexLen / 2]byte
	rand.Read(secret[:])
	key := KeyPrefix + hex.EncodeToString(secret[:])
	var id [6]byte
	rand.Read(id[:])
	k := sandbox.Key{
		ID:      "key_" + hex.EncodeToString(id[:]),
		Owner:   owner,
		Prefix:  key[:len(KeyPrefix)+8],
		Hash:    hashKey(key),
		Created: time.Now(),
	}
	if err := m.store.CreateKey(ctx, k); err != nil {
		return "", fmt.Errorf("api: create key: %w", err)
	}
	return key, nil
}

// List returns every key, revoked ones included, oldest first.
func (m *KeyManager) List(ctx context.Context) ([]KeyInfo, error) {
	keys, err := m.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("api: list keys: %w", err)
	}
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{ID: k.ID, Owner: k.Owner, Prefix: k.Prefix, Created: k.Created, Revoked: k.Revoked}
	}
	return out, nil
}

// Revoke stops the key id from working, at once.
func (m *KeyManager) Revoke(ctx context.Context, id string) error {
	if err := m.store.RevokeKey(ctx, id, time.Now()); err != nil {
		return fmt.Errorf("api: revoke key: %w", err)
	}
	return nil
}

// Bootstrap issues a key for DefaultOwner when the store has no key at
// all, revoked or not, and returns it; otherwise it returns "".
func (m *KeyManager) Bootstrap(ctx context.Context) (string, error) {
	keys, err := m.store.ListKeys(ctx)
	if err != nil {
		return "", fmt.Errorf("api: bootstrap key: %w", err)
	}
	if len(keys) > 0 {
		return "", nil
	}
	return m.Create(ctx, DefaultOwner)
}

// Authenticate returns the owner of key; a missing, malformed, unknown or
// revoked key is desktop.ErrUnauthorized.
func (m *KeyManager) Authenticate(ctx context.Context, key string) (string, error) {
	if key == "" {
		return "", desktop.Errorf(desktop.CodeUnauthorized,
			"missing API key: send it as \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\"")
	}
	if !ValidKey(key) {
		return "", desktop.Errorf(desktop.CodeUnauthorized,
			"malformed API key: keys are %q (or %q) followed by %d lowercase hex digits", KeyPrefix, E2BKeyPrefix, keyHexLen)
	}
	k, err := m.store.KeyByHash(ctx, hashKey(key))
	if errors.Is(err, desktop.ErrNotFound) {
		return "", desktop.Errorf(desktop.CodeUnauthorized, "unknown API key")
	}
	if err != nil {
		return "", fmt.Errorf("api: authenticate: %w", err)
	}
	if !k.Revoked.IsZero() {
		return "", desktop.Errorf(desktop.CodeUnauthorized, "API key %s... was revoked", k.Prefix)
	}
	return k.Owner, nil
}
