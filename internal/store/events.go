package store

import (
	"context"
	"fmt"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// AddEvent appends e to the event log.
func (s *Store) AddEvent(ctx context.Context, e sandbox.Event) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO events(time, sandbox_id, owner_id, kind, detail) VALUES(?, ?, ?, ?, ?)`,
		nanos(e.Time), e.SandboxID, e.Owner, e.Kind, e.Detail)
	if err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	return nil
}

// Events returns the events of one sandbox, oldest first.
func (s *Store) Events(ctx context.Context, sandboxID string) ([]sandbox.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT time, sandbox_id, owner_id, kind, detail FROM events
	WHERE sandbox_id = ? ORDER BY id`, sandboxID)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	var out []sandbox.Event
	for rows.Next() {
		var (
			e sandbox.Event
			t int64
		)
		if err := rows.Scan(&t, &e.SandboxID, &e.Owner, &e.Kind, &e.Detail); err != nil {
			return nil, fmt.Errorf("store: events: %w", err)
		}
		e.Time = fromNanos(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	return out, nil
}
