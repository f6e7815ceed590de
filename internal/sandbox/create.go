package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"
)

// DesktopUser is the user the desktop session runs as inside a sandbox.
const DesktopUser = "user"

// Create makes a sandbox for owner and returns it once its desktop is
// ready. When anything fails on the way, what was made is destroyed and
// forgotten again, even if ctx was cancelled.
func (m *Manager) Create(ctx context.Context, owner string, req CreateRequest) (Record, error) {
	if owner == "" {
		return Record{}, errors.New("sandbox: create: no owner given")
	}
	if err := req.Validate(); err != nil {
		return Record{}, err
	}
	tmpl, err := m.templates.Resolve(req.Template)
	if err != nil {
		return Record{}, fmt.Errorf("sandbox: create: template %q: %w", req.Template, err)
	}
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return Record{}, err
	}
	defer end()

	now := time.Now()
	rec := Record{
		ID:       NewID(),
		Owner:    owner,
		Template: req.Template,
		State:    StateStarting,
		Created:  now,
		EndAt:    now.Add(req.Timeout),
		Metadata: maps.Clone(req.Metadata),
		Params: Params{
			Width: req.Width, Height: req.Height, DPI: req.DPI,
			Limits: req.Limits, Network: req.Network,
			DisplayMode: req.DisplayMode, PublicPorts: req.PublicPorts,
		},
		Token: newToken(),
	}
	rec = rec.clone()
	e := newEntry(rec)
	e.lock <- struct{}{} // nobody else knows it yet

	var undo undoStack
	rec, err = m.create(ctx, e, rec, tmpl, req, &undo)
	if err != nil {
		cleanup := context.WithoutCancel(ctx)
		undo.run(cleanup, m.log)
		e.gone = true
		e.release()
		m.event(cleanup, rec, EventCreateFailed, err.Error())
		m.log.Warn("create sandbox failed", "sandbox_id", rec.ID, "owner", owner, "error", err)
		return Record{}, fmt.Errorf("sandbox: create: %w", err)
	}
	e.release()
	m.log.Info("sandbox created", "sandbox_id", rec.ID, "owner", owner, "template", rec.Template,
		"duration_ms", time.Since(now).Milliseconds())
	return rec.clone(), nil
}

// create runs the steps of Create, each with its undo on undo.
func (m *Manager) create(ctx context.Context, e *entry, rec Record, tmpl Template, req CreateRequest, undo *undoStack) (Record, error) {
	id := rec.ID
	m.mu.Lock()
	m.live[id] = e
	m.mu.Unlock()
	undo.push("forget", func(context.Context) error { m.forget(id); return nil })

	if err := m.store.InsertSandbox(ctx, rec); err != nil {
		return rec, fmt.Errorf("record: %w", err)
	}
	undo.push("delete record", func(ctx context.Context) error { return m.store.DeleteSandbox(ctx, id) })

	// Destroying an id the backend does not know is not an error, so the
	// undo goes first: it also removes what a failed Create left.
	undo.push("destroy", func(ctx context.Context) error { return m.backend.Destroy(ctx, id) })
	inst, err := m.backend.Create(ctx, m.spec(rec, tmpl, req))
	if err != nil {
		return rec, err
	}
	rec.Instance = inst
	if err := m.store.UpdateSandbox(ctx, rec); err != nil {
		return rec, fmt.Errorf("record: %w", err)
	}

	if err := m.waitReady(ctx, inst.Addr, rec.Token, req.DisplayMode); err != nil {
		return rec, err
	}
	rec.State = StateRunning
	rec.EndAt = time.Now().Add(req.Timeout)
	if err := m.store.UpdateSandbox(ctx, rec); err != nil {
		return rec, fmt.Errorf("record: %w", err)
	}
	e.rec = rec.clone()
	m.setRoute(rec)
	m.sched.set(id, rec.EndAt)
	m.event(ctx, rec, EventCreated, "")
	return rec, nil
}

// spec is what the backend makes for rec: the template's environment,
// overridden by the request's.
func (m *Manager) spec(rec Record, tmpl Template, req CreateRequest) Spec {
	vars := maps.Clone(tmpl.Env)
	if vars == nil {
		vars = map[string]string{}
	}
	maps.Copy(vars, req.Env)
	if _, set := vars["DISPLAY"]; !set {
		vars["DISPLAY"] = ":0"
	}
	env := make([]string, 0, len(vars)+1)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	// The token goes in the environment, not on the command line, where
	// the host's ps would show it; the agent removes it from its own
	// environment at start, so nothing it starts inherits it.
	env = append(env, "CUBICLE_AGENT_TOKEN="+rec.Token)
	return Spec{
		ID:        rec.ID,
		RootFS:    tmpl.RootFS,
		Agent:     m.cfg.Agent,
		AgentArgs: AgentArgs(rec.Params),
		Env:       env,
		Hostname:  rec.ID,
		Limits:    req.Limits,
		Network:   req.Network,
	}
}

// AgentArgs are the flags of `cubicle agent` in a sandbox with params p.
// The access token reaches it as CUBICLE_AGENT_TOKEN in its environment.
func AgentArgs(p Params) []string {
	args := []string{
		"--display", ":0",
		"--listen", "0.0.0.0:" + strconv.Itoa(AgentPort),
		"--resolution", strconv.Itoa(p.Width) + "x" + strconv.Itoa(p.Height),
		"--dpi", strconv.Itoa(p.DPI),
		"--user", DesktopUser,
		"--inherit-env",
	}
	if p.DisplayMode == DisplayExternal {
		args = append(args, "--display-mode", string(DisplayExternal))
	}
	return args
}

// undoStack holds the undo of every step taken, run last first.
type undoStack []undoStep

type undoStep struct {
	name string
	fn   func(context.Context) error
}

func (u *undoStack) push(name string, fn func(context.Context) error) {
	*u = append(*u, undoStep{name, fn})
}

// run undoes every step; a step that fails is logged and the rest still
// run.
func (u undoStack) run(ctx context.Context, log *slog.Logger) {
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i].fn(ctx); err != nil {
			log.Error("undo failed", "step", u[i].name, "error", err)
		}
	}
}
