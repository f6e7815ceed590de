package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// reconcile makes memory, store and backend agree after a start: every
// sandbox the store has as running or paused is adopted, with the end it
// had; the ones the backend lost, or that were still starting when the
// server stopped, are recorded killed; and the backend reclaims whatever
// belongs to no adopted sandbox.
func (m *Manager) reconcile(ctx context.Context) error {
	recs, err := m.store.ListSandboxes(ctx, Filter{States: []State{StateStarting, StateRunning, StatePaused}})
	if err != nil {
		return fmt.Errorf("sandbox: reconcile: %w", err)
	}
	keep := make(map[string]bool)
	var expired []*entry
	for _, rec := range recs {
		if rec.State == StateStarting || rec.Instance == nil {
			m.lose(ctx, rec, errors.New("the server stopped while the sandbox was starting"))
			continue
		}
		if err := m.backend.Adopt(ctx, *rec.Instance); err != nil {
			m.lose(ctx, rec, err)
			continue
		}
		keep[rec.ID] = true
		e := newEntry(rec.clone())
		m.mu.Lock()
		m.live[rec.ID] = e
		m.mu.Unlock()
		m.setRoute(rec)
		m.event(ctx, rec, EventAdopted, "")
		if !rec.EndAt.After(time.Now()) {
			expired = append(expired, e)
			continue
		}
		m.sched.set(rec.ID, rec.EndAt)
		m.log.Info("sandbox adopted", "sandbox_id", rec.ID, "owner", rec.Owner, "end_at", rec.EndAt)
	}
	// Sandboxes whose end passed while the server was down.
	for _, e := range expired {
		e.lock <- struct{}{}
		if err := m.kill(ctx, e, EventTimeout); err != nil {
			m.log.Error("kill sandbox that timed out while the server was down", "sandbox_id", e.rec.ID, "error", err,
				"retry_in", retryKill)
			m.sched.set(e.rec.ID, time.Now().Add(retryKill))
		} else {
			m.log.Info("sandbox timed out while the server was down", "sandbox_id", e.rec.ID)
		}
		e.release()
	}
	if err := m.backend.Reclaim(ctx, keep); err != nil {
		return fmt.Errorf("sandbox: reconcile: reclaim leftovers: %w", err)
	}
	m.prune(ctx)
	return nil
}

// lose records as killed a sandbox that cannot be adopted, and destroys
// whatever is left of it.
func (m *Manager) lose(ctx context.Context, rec Record, cause error) {
	m.log.Warn("sandbox lost", "sandbox_id", rec.ID, "owner", rec.Owner, "state", rec.State, "error", cause)
	if err := m.backend.Destroy(ctx, rec.ID); err != nil {
		m.log.Warn("destroy lost sandbox", "sandbox_id", rec.ID, "error", err)
	}
	rec.State = StateKilled
	rec.Ended = time.Now()
	m.event(ctx, rec, EventLost, cause.Error())
	if err := m.store.UpdateSandbox(ctx, rec); err != nil {
		m.log.Error("record lost sandbox", "sandbox_id", rec.ID, "error", err)
	}
}
