package sandbox

import (
	"context"
	"log/slog"
	"time"
)

// Store remembers who owns what: sandboxes, API keys and a log of events.
// The backend is the truth for what runs; the store is the truth for owners,
// timeouts and metadata, and for what to adopt after a restart.
//
// Errors carry the classes of package desktop: desktop.ErrNotFound for a
// missing record, desktop.ErrConflict for a duplicate one.
type Store interface {
	SandboxStore
	EventStore
	KeyStore
	// Close releases the store. Calls after Close fail.
	Close() error
}

// SandboxStore keeps sandbox records.
type SandboxStore interface {
	// InsertSandbox adds r; a record with the same ID is a conflict.
	InsertSandbox(ctx context.Context, r Record) error
	// UpdateSandbox replaces everything of the record r.ID but its ID,
	// Owner and Created.
	UpdateSandbox(ctx context.Context, r Record) error
	GetSandbox(ctx context.Context, id string) (Record, error)
	// ListSandboxes returns the records f matches, ordered by Created and
	// then ID.
	ListSandboxes(ctx context.Context, f Filter) ([]Record, error)
	// DeleteSandbox removes a record; removing a missing one is not an
	// error.
	DeleteSandbox(ctx context.Context, id string) error
	// Prune removes killed sandboxes that ended before t and every event
	// older than t, and reports how many sandboxes it removed.
	Prune(ctx context.Context, t time.Time) (int, error)
}

// EventStore keeps a log of what happened to sandboxes, for debugging.
type EventStore interface {
	AddEvent(ctx context.Context, e Event) error
	// Events returns the events of one sandbox, oldest first.
	Events(ctx context.Context, sandboxID string) ([]Event, error)
}

// KeyStore keeps API keys. It never sees a key itself, only its SHA-256
// hash and a short prefix that a person can recognise.
type KeyStore interface {
	// CreateKey adds k (and its owner, if new); a duplicate ID or hash is a
	// conflict.
	CreateKey(ctx context.Context, k Key) error
	// KeyByHash finds a key, revoked or not, by the hex SHA-256 of its
	// plaintext.
	KeyByHash(ctx context.Context, hash string) (Key, error)
	// ListKeys returns every key, revoked ones included, oldest first.
	ListKeys(ctx context.Context) ([]Key, error)
	// RevokeKey marks a key revoked at t; revoking it again keeps the
	// first time.
	RevokeKey(ctx context.Context, id string, t time.Time) error
}

// State is where a sandbox is in its life.
type State string

// The states of a sandbox. A sandbox is starting until its desktop is ready,
// and killed for good.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StatePaused   State = "paused"
	StateKilled   State = "killed"
)

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	switch s {
	case StateStarting, StateRunning, StatePaused, StateKilled:
		return true
	}
	return false
}

// Record is a sandbox as the store keeps it.
type Record struct {
	ID       string
	Owner    string
	Template string
	State    State
	Created  time.Time
	// EndAt is when the timeout kills the sandbox.
	EndAt time.Time
	// Ended is when the sandbox was killed; zero until then.
	Ended    time.Time
	Metadata map[string]string
	Params   Params
	// Instance is how the backend knows the sandbox; nil until the
	// backend made it.
	Instance *Instance
	// Token is the sandbox's access token, required by its agent and by
	// the proxy. It never appears in logs.
	Token string
}

// LogValue keeps the access token out of logs.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sandbox_id", r.ID),
		slog.String("owner", r.Owner),
		slog.String("state", string(r.State)),
		slog.Time("end_at", r.EndAt),
	)
}

// Params are the settings a sandbox was created with, as they are shown
// back to its owner.
type Params struct {
	Width, Height int
	DPI           int
	Limits        Limits
	Network       NetworkPolicy
	DisplayMode   DisplayMode
	// PublicPorts: see CreateRequest.PublicPorts.
	PublicPorts bool
}

// Filter selects sandbox records. Zero fields match everything.
type Filter struct {
	Owner  string
	States []State
	// Metadata pairs must all be present with these values.
	Metadata map[string]string
	// After skips records up to and including this position.
	After Cursor
	// Limit bounds the number of records; 0 means no bound.
	Limit int
}

// Event is one entry of the event log.
type Event struct {
	Time      time.Time
	SandboxID string
	Owner     string
	Kind      string
	Detail    string
}

// Event kinds.
const (
	EventCreated      = "created"
	EventCreateFailed = "create_failed"
	EventKilled       = "killed"
	EventTimeout      = "timeout"
	EventPaused       = "paused"
	EventResumed      = "resumed"
	EventAdopted      = "adopted"
	EventLost         = "lost"
)

// Key is an API key as the store keeps it.
type Key struct {
	ID     string
	Owner  string
	Prefix string // the first characters of the key, to recognise it
	Hash   string // hex SHA-256 of the key
	// Created is when the key was made; Revoked when it stopped working,
	// or zero.
	Created time.Time
	Revoked time.Time
}
