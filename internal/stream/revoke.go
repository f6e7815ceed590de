package stream

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// secretBytes is the size of the key that signs stream tokens.
const secretBytes = 32

// loadSecret reads the signing key at path, making it (mode 0600) on the
// first start. Keeping it across restarts keeps stream URLs valid.
func loadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != secretBytes {
			return nil, fmt.Errorf("stream: secret %s has %d bytes, want %d; remove it to make a new one (open stream URLs stop working)", path, len(b), secretBytes)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stream: %w", err)
	}
	b = make([]byte, secretBytes)
	rand.Read(b)
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("stream: write secret: %w", err)
	}
	return b, nil
}

// revocations remembers revoked tokens until they would have expired
// anyway, in a JSON file so that a restart keeps them revoked.
type revocations struct {
	path string
	keep time.Duration // the longest life of a token

	mu sync.Mutex
	// Tokens maps "<sandbox id>/<token id>" to when its entry may be
	// forgotten.
	Tokens map[string]time.Time `json:"tokens"`
	// Sandboxes maps a sandbox id to the time before which every token
	// of it was revoked.
	Sandboxes map[string]time.Time `json:"sandboxes"`
}

func loadRevocations(path string, keep time.Duration) (*revocations, error) {
	r := &revocations{path: path, keep: keep, Tokens: map[string]time.Time{}, Sandboxes: map[string]time.Time{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("stream: revocations %s: %w", path, err)
	}
	if r.Tokens == nil {
		r.Tokens = map[string]time.Time{}
	}
	if r.Sandboxes == nil {
		r.Sandboxes = map[string]time.Time{}
	}
	return r, nil
}

// revokeToken revokes the token id of sandbox sb.
func (r *revocations) revokeToken(sb, id string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Tokens[sb+"/"+id] = now.Add(r.keep)
	return r.saveLocked(now)
}

// revokeSandbox revokes every token of sandbox id issued up to now.
func (r *revocations) revokeSandbox(id string, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Sandboxes[id] = now
	return r.saveLocked(now)
}

// check refuses c when it was revoked.
func (r *revocations) check(c Claims) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.Tokens[c.Sandbox+"/"+c.ID]; ok {
		return tokenErr(ReasonTokenRevoked, "stream token %s was revoked; ask for a new stream URL", c.ID)
	}
	if at, ok := r.Sandboxes[c.Sandbox]; ok && !c.IssuedAt.After(at) {
		return tokenErr(ReasonTokenRevoked, "every stream URL of sandbox %s issued until %s was revoked; ask for a new one",
			c.Sandbox, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// saveLocked forgets what can no longer matter and writes the file.
func (r *revocations) saveLocked(now time.Time) error {
	for id, until := range r.Tokens {
		if now.After(until) {
			delete(r.Tokens, id)
		}
	}
	for id, at := range r.Sandboxes {
		if now.After(at.Add(r.keep)) {
			delete(r.Sandboxes, id)
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("stream: revocations: %w", err)
	}
	if err := writeFileAtomic(r.path, b, 0o600); err != nil {
		return fmt.Errorf("stream: save revocations: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to name through a temporary file and a
// rename, so that a crash leaves the old file or the new one.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
