package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// MaxPage is the largest page List returns.
const MaxPage = 100

// ListQuery selects owner's sandboxes. No States means every state but
// killed.
type ListQuery struct {
	States   []State
	Metadata map[string]string
	// Limit is the page size, 1 to MaxPage; 0 means MaxPage.
	Limit int
	// After is the Next of the previous page.
	After Cursor
}

// Page is one page of a list.
type Page struct {
	Sandboxes []Record
	// Next is where the next page starts; zero on the last page.
	Next Cursor
}

// Get returns owner's sandbox id, killed or not.
func (m *Manager) Get(ctx context.Context, owner, id string) (Record, error) {
	if owner == "" || !ValidID(id) {
		return Record{}, notFound(id)
	}
	rec, err := m.store.GetSandbox(ctx, id)
	if errors.Is(err, desktop.ErrNotFound) || (err == nil && rec.Owner != owner) {
		return Record{}, notFound(id)
	}
	if err != nil {
		return Record{}, fmt.Errorf("sandbox: get %s: %w", id, err)
	}
	return rec.clone(), nil
}

// List returns a page of owner's sandboxes, oldest first.
func (m *Manager) List(ctx context.Context, owner string, q ListQuery) (Page, error) {
	if owner == "" {
		return Page{}, errors.New("sandbox: list: no owner given")
	}
	if q.Limit < 0 || q.Limit > MaxPage {
		return Page{}, invalid("limit", "limit must be from 1 to %d, not %d", MaxPage, q.Limit)
	}
	limit := q.Limit
	if limit == 0 {
		limit = MaxPage
	}
	states := q.States
	if len(states) == 0 {
		states = []State{StateStarting, StateRunning, StatePaused}
	}
	recs, err := m.store.ListSandboxes(ctx, Filter{
		Owner: owner, States: states, Metadata: q.Metadata, After: q.After, Limit: limit + 1,
	})
	if err != nil {
		return Page{}, fmt.Errorf("sandbox: list: %w", err)
	}
	var p Page
	if len(recs) > limit {
		recs = recs[:limit]
		last := recs[len(recs)-1]
		p.Next = Cursor{Created: last.Created, ID: last.ID}
	}
	p.Sandboxes = make([]Record, len(recs))
	for i, r := range recs {
		p.Sandboxes[i] = r.clone()
	}
	return p, nil
}

// Kill destroys owner's sandbox id.
func (m *Manager) Kill(ctx context.Context, owner, id string) error {
	return m.with(ctx, owner, id, func(ctx context.Context, e *entry) error {
		return m.kill(ctx, e, EventKilled)
	})
}

// kill destroys the sandbox of e, which the caller holds, and records it
// killed. Once begun it runs to the end whatever ctx says.
func (m *Manager) kill(ctx context.Context, e *entry, kind string) error {
	ctx = context.WithoutCancel(ctx)
	id := e.rec.ID
	if err := m.backend.Destroy(ctx, id); err != nil {
		return fmt.Errorf("sandbox: kill %s: %w", id, err)
	}
	m.forget(id)
	e.gone = true
	e.rec.State = StateKilled
	e.rec.Ended = time.Now()
	m.event(ctx, e.rec, kind, "")
	if err := m.store.UpdateSandbox(ctx, e.rec); err != nil {
		return fmt.Errorf("sandbox: kill %s: record it: %w", id, err)
	}
	return nil
}

// SetTimeout makes owner's sandbox id end d from now, sooner or later
// than it would have.
func (m *Manager) SetTimeout(ctx context.Context, owner, id string, d time.Duration) (Record, error) {
	if err := ValidateTimeout(d); err != nil {
		return Record{}, err
	}
	return m.update(ctx, owner, id, func(ctx context.Context, rec *Record) error {
		rec.EndAt = time.Now().Add(d)
		return nil
	})
}

// SetMetadata replaces the metadata of owner's sandbox id.
func (m *Manager) SetMetadata(ctx context.Context, owner, id string, md map[string]string) (Record, error) {
	if err := ValidateMetadata(md); err != nil {
		return Record{}, err
	}
	return m.update(ctx, owner, id, func(ctx context.Context, rec *Record) error {
		rec.Metadata = maps.Clone(md)
		return nil
	})
}

// Connect returns owner's sandbox id ready for use: a paused one is resumed.
// A timeout d > 0 makes it live at least d from now; it never shortens its
// life.
func (m *Manager) Connect(ctx context.Context, owner, id string, d time.Duration) (Record, error) {
	if d != 0 {
		if err := ValidateTimeout(d); err != nil {
			return Record{}, err
		}
	}
	return m.update(ctx, owner, id, func(ctx context.Context, rec *Record) error {
		if rec.State == StatePaused {
			if err := m.backend.Resume(ctx, id); err != nil {
				return fmt.Errorf("sandbox: resume %s: %w", id, err)
			}
			rec.State = StateRunning
			m.event(ctx, *rec, EventResumed, "connect")
		}
		if end := time.Now().Add(d); d > 0 && end.After(rec.EndAt) {
			rec.EndAt = end
		}
		return nil
	})
}

// Pause freezes every process of owner's sandbox id. Its timeout still
// runs.
func (m *Manager) Pause(ctx context.Context, owner, id string) (Record, error) {
	return m.update(ctx, owner, id, func(ctx context.Context, rec *Record) error {
		if rec.State == StatePaused {
			return desktop.Errorf(desktop.CodeConflict, "sandbox %s is already paused", id)
		}
		if err := m.backend.Pause(ctx, id); err != nil {
			return fmt.Errorf("sandbox: pause %s: %w", id, err)
		}
		rec.State = StatePaused
		m.event(ctx, *rec, EventPaused, "")
		return nil
	})
}

// Resume thaws owner's paused sandbox id.
func (m *Manager) Resume(ctx context.Context, owner, id string) (Record, error) {
	return m.update(ctx, owner, id, func(ctx context.Context, rec *Record) error {
		if rec.State != StatePaused {
			return desktop.Errorf(desktop.CodeConflict, "sandbox %s is not paused", id)
		}
		if err := m.backend.Resume(ctx, id); err != nil {
			return fmt.Errorf("sandbox: resume %s: %w", id, err)
		}
		rec.State = StateRunning
		m.event(ctx, *rec, EventResumed, "")
		return nil
	})
}

// SetNetwork replaces the egress policy of owner's sandbox id, live.
func (m *Manager) SetNetwork(ctx context.Context, owner, id string, p NetworkPolicy) (Record, error) {
	if err := ValidateNetwork(p); err != nil {
		return Record{}, err
	}
	return m.update(ctx, owner, id, func(ctx context.Context, rec *Record) error {
		if err := m.backend.SetNetwork(ctx, id, p); err != nil {
			return fmt.Errorf("sandbox: set network of %s: %w", id, err)
		}
		rec.Params.Network = p
		return nil
	})
}

// Metrics reports the resource use of owner's sandbox id now.
func (m *Manager) Metrics(ctx context.Context, owner, id string) (Stats, error) {
	var st Stats
	err := m.with(ctx, owner, id, func(ctx context.Context, e *entry) error {
		var err error
		st, err = m.backend.Stats(ctx, id)
		if err != nil {
			return fmt.Errorf("sandbox: stats of %s: %w", id, err)
		}
		return nil
	})
	return st, err
}

// with runs fn on owner's live sandbox id, holding it.
func (m *Manager) with(ctx context.Context, owner, id string, fn func(context.Context, *entry) error) error {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	e, err := m.open(ctx, owner, id)
	if err != nil {
		return err
	}
	defer e.release()
	return fn(ctx, e)
}

// update runs fn on a copy of the record of owner's live sandbox id and
// stores the result; the timer and the route follow the record.
func (m *Manager) update(ctx context.Context, owner, id string, fn func(context.Context, *Record) error) (Record, error) {
	var out Record
	err := m.with(ctx, owner, id, func(ctx context.Context, e *entry) error {
		rec := e.rec.clone()
		if err := fn(ctx, &rec); err != nil {
			return err
		}
		// What fn did to the sandbox is done: record it whatever ctx says.
		if err := m.store.UpdateSandbox(context.WithoutCancel(ctx), rec); err != nil {
			return fmt.Errorf("sandbox: update %s: %w", id, err)
		}
		e.rec = rec
		m.setRoute(rec)
		m.sched.set(id, rec.EndAt)
		out = rec.clone()
		return nil
	})
	return out, err
}
