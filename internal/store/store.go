// Package store keeps sandboxes, API keys and events in SQLite on disk
// (modernc.org/sqlite, pure Go): one file in WAL mode, its schema versioned
// by a table of applied migrations.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// Store is a sandbox.Store in one SQLite file.
type Store struct {
	db *sql.DB
}

var _ sandbox.Store = (*Store)(nil)

// busyTimeout is how long a write waits for another one to finish.
const busyTimeout = 10 * time.Second

// Open opens (creating it if needed, readable by its owner only) the
// database at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	// SQLite gives the -wal and -shm files the mode of the database, so
	// creating it 0600 keeps the tokens in all three private.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	f.Close()
	dsn := fmt.Sprintf("file:%s?_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_txlock=immediate",
		path, busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// migrations are applied in order, each once; append, never edit.
var migrations = []string{
	1: `
CREATE TABLE owners (
	id      TEXT PRIMARY KEY,
	created INTEGER NOT NULL
);
CREATE TABLE api_keys (
	id       TEXT PRIMARY KEY,
	owner_id TEXT NOT NULL REFERENCES owners(id),
	prefix   TEXT NOT NULL,
	hash     TEXT NOT NULL UNIQUE,
	created  INTEGER NOT NULL,
	revoked  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sandboxes (
	id       TEXT PRIMARY KEY,
	owner_id TEXT NOT NULL,
	template TEXT NOT NULL,
	state    TEXT NOT NULL,
	created  INTEGER NOT NULL,
	end_at   INTEGER NOT NULL,
	ended    INTEGER NOT NULL DEFAULT 0,
	metadata TEXT NOT NULL DEFAULT '{}',
	spec     TEXT NOT NULL,
	instance TEXT,
	token    TEXT NOT NULL
);
CREATE INDEX sandboxes_by_owner ON sandboxes(owner_id, created, id);
CREATE INDEX sandboxes_by_state ON sandboxes(state, ended);
CREATE TABLE events (
	id         INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	sandbox_id TEXT NOT NULL,
	owner_id   TEXT NOT NULL,
	kind       TEXT NOT NULL,
	detail     TEXT NOT NULL
);
CREATE INDEX events_by_sandbox ON events(sandbox_id, id);
CREATE INDEX events_by_time ON events(time);
`,
}

// migrate applies the migrations the database lacks.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	applied INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if want := len(migrations) - 1; have > want {
		return fmt.Errorf("migrate: the database has schema version %d, newer than the %d this program knows", have, want)
	}
	for v := have + 1; v < len(migrations); v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			// Another process may have applied it since we looked.
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, v).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied) VALUES(?, ?)`, v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", v, err)
		}
	}
	return nil
}

// tx runs fn in a transaction that holds the write lock from its start.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// conflict reports whether err is a broken UNIQUE or PRIMARY KEY
// constraint.
func conflict(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func classify(err error) error {
	if conflict(err) {
		return fmt.Errorf("%w: %w", desktop.ErrConflict, err)
	}
	return err
}

// nanos stores a time; the zero time is 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
