package sandboxtest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Store is a sandbox.Store in memory.
type Store struct {
	mu        sync.Mutex
	sandboxes map[string]sandbox.Record
	keys      []sandbox.Key
	events    []sandbox.Event
	closed    bool
}

var _ sandbox.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{sandboxes: make(map[string]sandbox.Record)}
}

var errClosed = errors.New("fake store: closed")

// copyRecord returns a deep copy of r, as a round trip through a database
// would.
func copyRecord(r sandbox.Record) sandbox.Record {
	r.Metadata = maps.Clone(r.Metadata)
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	raw, _ := json.Marshal(r.Params)
	r.Params = sandbox.Params{}
	json.Unmarshal(raw, &r.Params)
	if r.Instance != nil {
		inst := *r.Instance
		inst.State = slices.Clone(inst.State)
		r.Instance = &inst
	}
	return r
}

// Close makes every later call fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// InsertSandbox adds r.
func (s *Store) InsertSandbox(ctx context.Context, r sandbox.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if _, ok := s.sandboxes[r.ID]; ok {
		return fmt.Errorf("fake store: insert sandbox %s: %w", r.ID, desktop.ErrConflict)
	}
	s.sandboxes[r.ID] = copyRecord(r)
	return nil
}

// UpdateSandbox replaces what may change of the record r.ID.
func (s *Store) UpdateSandbox(ctx context.Context, r sandbox.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	old, ok := s.sandboxes[r.ID]
	if !ok {
		return fmt.Errorf("fake store: update sandbox %s: %w", r.ID, desktop.ErrNotFound)
	}
	r = copyRecord(r)
	r.Owner, r.Created = old.Owner, old.Created
	s.sandboxes[r.ID] = r
	return nil
}

// GetSandbox returns the record id.
func (s *Store) GetSandbox(ctx context.Context, id string) (sandbox.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sandbox.Record{}, errClosed
	}
	r, ok := s.sandboxes[id]
	if !ok {
		return sandbox.Record{}, fmt.Errorf("fake store: sandbox %q: %w", id, desktop.ErrNotFound)
	}
	return copyRecord(r), nil
}

// ListSandboxes returns the records f matches, by creation time and ID.
func (s *Store) ListSandboxes(ctx context.Context, f sandbox.Filter) ([]sandbox.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	var out []sandbox.Record
	for _, r := range s.sandboxes {
		if matches(r, f) {
			out = append(out, copyRecord(r))
		}
	}
	slices.SortFunc(out, func(a, b sandbox.Record) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func matches(r sandbox.Record, f sandbox.Filter) bool {
	if f.Owner != "" && r.Owner != f.Owner {
		return false
	}
	if len(f.States) > 0 && !slices.Contains(f.States, r.State) {
		return false
	}
	for k, v := range f.Metadata {
		if got, ok := r.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return !f.After.Skips(r.Created, r.ID)
}

// DeleteSandbox removes the record id, if there is one.
func (s *Store) DeleteSandbox(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	delete(s.sandboxes, id)
	return nil
}

// Prune removes killed sandboxes that ended before t and events older
// than t.
func (s *Store) Prune(ctx context.Context, t time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	n := 0
	for id, r := range s.sandboxes {
		if r.State == sandbox.StateKilled && r.Ended.Before(t) {
			delete(s.sandboxes, id)
			n++
		}
	}
	s.events = slices.DeleteFunc(s.events, func(e sandbox.Event) bool { return e.Time.Before(t) })
	return n, nil
}

// AddEvent appends e to the event log.
func (s *Store) AddEvent(ctx context.Context, e sandbox.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	s.events = append(s.events, e)
	return nil
}

// Events returns the events of one sandbox, oldest first.
func (s *Store) Events(ctx context.Context, sandboxID string) ([]sandbox.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	var out []sandbox.Event
	for _, e := range s.events {
		if e.SandboxID == sandboxID {
			out = append(out, e)
		}
	}
	return out, nil
}

// CreateKey adds k.
func (s *Store) CreateKey(ctx context.Context, k sandbox.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for _, o := range s.keys {
		if o.ID == k.ID || o.Hash == k.Hash {
			return fmt.Errorf("fake store: create key %s: %w", k.ID, desktop.ErrConflict)
		}
	}
	s.keys = append(s.keys, k)
	return nil
}

// KeyByHash finds a key by the hex SHA-256 of its plaintext.
func (s *Store) KeyByHash(ctx context.Context, hash string) (sandbox.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return sandbox.Key{}, errClosed
	}
	for _, k := range s.keys {
		if k.Hash == hash {
			return k, nil
		}
	}
	return sandbox.Key{}, fmt.Errorf("fake store: key: %w", desktop.ErrNotFound)
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]sandbox.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	out := slices.Clone(s.keys)
	slices.SortStableFunc(out, func(a, b sandbox.Key) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// RevokeKey marks the key id revoked at t, unless it already is.
func (s *Store) RevokeKey(ctx context.Context, id string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for i := range s.keys {
		if s.keys[i].ID == id {
			if s.keys[i].Revoked.IsZero() {
				s.keys[i].Revoked = t
			}
			return nil
		}
	}
	return fmt.Errorf("fake store: revoke key %q: %w", id, desktop.ErrNotFound)
}
