package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

const sandboxColumns = `id, owner_id, template, state, created, end_at, ended, metadata, spec, instance, token`

// row is a sandbox record in its column encoding.
type row struct {
	metadata, spec string
	instance       sql.NullString
}

func encode(r sandbox.Record) (row, error) {
	md := r.Metadata
	if md == nil {
		md = map[string]string{}
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return row{}, fmt.Errorf("encode metadata: %w", err)
	}
	spec, err := json.Marshal(toParamsJSON(r.Params))
	if err != nil {
		return row{}, fmt.Errorf("encode params: %w", err)
	}
	out := row{metadata: string(mdJSON), spec: string(spec)}
	if r.Instance != nil {
		inst, err := json.Marshal(r.Instance)
		if err != nil {
			return row{}, fmt.Errorf("encode instance: %w", err)
		}
		out.instance = sql.NullString{String: string(inst), Valid: true}
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanSandbox(sc scanner) (sandbox.Record, error) {
	var (
		r                     sandbox.Record
		state                 string
		created, endAt, ended int64
		w                     row
	)
	if err := sc.Scan(&r.ID, &r.Owner, &r.Template, &state, &created, &endAt, &ended, &w.metadata, &w.spec, &w.instance, &r.Token); err != nil {
		return sandbox.Record{}, err
	}
	r.State = sandbox.State(state)
	r.Created, r.EndAt, r.Ended = fromNanos(created), fromNanos(endAt), fromNanos(ended)
	if err := json.Unmarshal([]byte(w.metadata), &r.Metadata); err != nil {
		return sandbox.Record{}, fmt.Errorf("sandbox %s: decode metadata: %w", r.ID, err)
	}
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	var params paramsJSON
	if err := json.Unmarshal([]byte(w.spec), &params); err != nil {
		return sandbox.Record{}, fmt.Errorf("sandbox %s: decode params: %w", r.ID, err)
	}
	r.Params = params.params()
	if w.instance.Valid {
		r.Instance = new(sandbox.Instance)
		if err := json.Unmarshal([]byte(w.instance.String), r.Instance); err != nil {
			return sandbox.Record{}, fmt.Errorf("sandbox %s: decode instance: %w", r.ID, err)
		}
	}
	return r, nil
}

// InsertSandbox adds r.
func (s *Store) InsertSandbox(ctx context.Context, r sandbox.Record) error {
	w, err := encode(r)
	if err != nil {
		return fmt.Errorf("store: insert sandbox %s: %w", r.ID, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO sandboxes(`+sandboxColumns+`) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Owner, r.Template, string(r.State), nanos(r.Created), nanos(r.EndAt), nanos(r.Ended),
		w.metadata, w.spec, w.instance, r.Token)
	if err != nil {
		return fmt.Errorf("store: insert sandbox %s: %w", r.ID, classify(err))
	}
	return nil
}

// UpdateSandbox replaces what may change of the record r.ID.
func (s *Store) UpdateSandbox(ctx context.Context, r sandbox.Record) error {
	w, err := encode(r)
	if err != nil {
		return fmt.Errorf("store: update sandbox %s: %w", r.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE sandboxes SET template = ?, state = ?, end_at = ?, ended = ?,
	metadata = ?, spec = ?, instance = ?, token = ? WHERE id = ?`,
		r.Template, string(r.State), nanos(r.EndAt), nanos(r.Ended), w.metadata, w.spec, w.instance, r.Token, r.ID)
	if err != nil {
		return fmt.Errorf("store: update sandbox %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: update sandbox %s: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("store: update sandbox %s: %w", r.ID, desktop.ErrNotFound)
	}
	return nil
}

// GetSandbox returns the record id.
func (s *Store) GetSandbox(ctx context.Context, id string) (sandbox.Record, error) {
	r, err := scanSandbox(s.db.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return sandbox.Record{}, fmt.Errorf("store: sandbox %q: %w", id, desktop.ErrNotFound)
	}
	if err != nil {
		return sandbox.Record{}, fmt.Errorf("store: get sandbox %s: %w", id, err)
	}
	return r, nil
}

// ListSandboxes returns the records f matches, by creation time and ID.
func (s *Store) ListSandboxes(ctx context.Context, f sandbox.Filter) ([]sandbox.Record, error) {
	var (
		where []string
		args  []any
	)
	if f.Owner != "" {
		where = append(where, `owner_id = ?`)
		args = append(args, f.Owner)
	}
	if len(f.States) > 0 {
		where = append(where, `state IN (?`+strings.Repeat(`, ?`, len(f.States)-1)+`)`)
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(f.Metadata)) {
		where = append(where, `EXISTS (SELECT 1 FROM json_each(sandboxes.metadata) AS m WHERE m.key = ? AND m.value = ?)`)
		args = append(args, k, f.Metadata[k])
	}
	if !f.After.IsZero() {
		c := nanos(f.After.Created)
		where = append(where, `(created > ? OR (created = ? AND id > ?))`)
		args = append(args, c, c, f.After.ID)
	}
	q := `SELECT ` + sandboxColumns + ` FROM sandboxes`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY created, id`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list sandboxes: %w", err)
	}
	defer rows.Close()
	var out []sandbox.Record
	for rows.Next() {
		r, err := scanSandbox(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list sandboxes: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list sandboxes: %w", err)
	}
	return out, nil
}

// DeleteSandbox removes the record id, if there is one.
func (s *Store) DeleteSandbox(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sandboxes WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete sandbox %s: %w", id, err)
	}
	return nil
}

// Prune removes killed sandboxes that ended before t and events older
// than t.
func (s *Store) Prune(ctx context.Context, t time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sandboxes WHERE state = ? AND ended < ?`, string(sandbox.StateKilled), nanos(t))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE time < ?`, nanos(t))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune: %w", err)
	}
	return int(n), nil
}
