package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

const keyColumns = `id, owner_id, prefix, hash, created, revoked`

func scanKey(sc scanner) (sandbox.Key, error) {
	var (
		k                sandbox.Key
		created, revoked int64
	)
	if err := sc.Scan(&k.ID, &k.Owner, &k.Prefix, &k.Hash, &created, &revoked); err != nil {
		return sandbox.Key{}, err
	}
	k.Created, k.Revoked = fromNanos(created), fromNanos(revoked)
	return k, nil
}

// CreateKey adds k, and its owner if the owner is new.
func (s *Store) CreateKey(ctx context.Context, k sandbox.Key) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO owners(id, created) VALUES(?, ?)`, k.Owner, nanos(k.Created)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys(`+keyColumns+`) VALUES(?, ?, ?, ?, ?, ?)`,
			k.ID, k.Owner, k.Prefix, k.Hash, nanos(k.Created), nanos(k.Revoked))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: create key %s: %w", k.ID, classify(err))
	}
	return nil
}

// KeyByHash finds a key by the hex SHA-256 of its plaintext.
func (s *Store) KeyByHash(ctx context.Context, hash string) (sandbox.Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return sandbox.Key{}, fmt.Errorf("store: key: %w", desktop.ErrNotFound)
	}
	if err != nil {
		return sandbox.Key{}, fmt.Errorf("store: key: %w", err)
	}
	return k, nil
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]sandbox.Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	defer rows.Close()
	var out []sandbox.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list keys: %w", err)
	}
	return out, nil
}

// RevokeKey marks the key id revoked at t, unless it already is.
func (s *Store) RevokeKey(ctx context.Context, id string, t time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var revoked int64
		err := tx.QueryRowContext(ctx, `SELECT revoked FROM api_keys WHERE id = ?`, id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("key %q: %w", id, desktop.ErrNotFound)
		}
		if err != nil || revoked != 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE api_keys SET revoked = ? WHERE id = ?`, nanos(t), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: revoke key: %w", err)
	}
	return nil
}
