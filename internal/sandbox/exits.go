package sandbox

import "context"

// ExitWatcher is a Backend that reports sandboxes whose init ended on its
// own (the agent crashed or was killed from outside), on a channel closed
// when the Backend closes.
type ExitWatcher interface {
	Exited() <-chan string
}

// exits returns the backend's exit reports, or nil when it has none.
func (m *Manager) exits() <-chan string {
	if w, ok := m.backend.(ExitWatcher); ok {
		return w.Exited()
	}
	return nil
}

// startExited records as lost, in the background, a sandbox whose init
// ended, and destroys what is left of it.
func (m *Manager) startExited(id string) {
	ctx, end, err := m.begin(context.Background())
	if err != nil {
		return // closing: the next start finds it gone
	}
	go func() {
		defer end()
		e, err := m.lookup(ctx, id)
		if err != nil {
			return // killed meanwhile, or closing
		}
		defer e.release()
		if e.gone || (e.rec.State != StateRunning && e.rec.State != StatePaused) {
			return
		}
		m.log.Warn("sandbox ended on its own: its agent exited; removing what is left", "sandbox_id", id, "owner", e.rec.Owner)
		if err := m.kill(ctx, e, EventLost); err != nil {
			m.log.Error("remove the sandbox whose agent exited", "sandbox_id", id, "error", err)
		}
	}()
}
