package sandbox_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// env is a manager on a fake backend and store, reached over an in-memory
// network so that it runs inside a synctest bubble.
type env struct {
	t     *testing.T
	net   *sandboxtest.Network
	be    *sandboxtest.Backend
	store *sandboxtest.Store
	m     *sandbox.Manager
	cfg   sandbox.Config
	tmpl  sandbox.Templates
}

var templates = sandboxtest.Templates{"desktop": "/templates/desktop", "other": "/templates/other"}

// newEnv starts a manager; call it inside a bubble, and stop (deferred)
// before the bubble ends.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, templates)
}

// newEnvWith is newEnv with other templates.
func newEnvWith(t *testing.T, tmpl sandbox.Templates) *env {
	t.Helper()
	n := sandboxtest.NewNetwork()
	e := &env{
		t:     t,
		net:   n,
		be:    sandboxtest.NewBackend(sandboxtest.Options{Net: n, ReadyAfter: 2 * time.Second}),
		store: sandboxtest.NewStore(),
		tmpl:  tmpl,
		cfg: sandbox.Config{
			Agent:        "/usr/bin/cubicle",
			Logger:       slog.New(slog.DiscardHandler),
			ReadyTimeout: time.Minute,
			DialContext:  n.DialContext,
		},
	}
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	m, err := sandbox.NewManager(e.cfg, e.be, e.store, e.tmpl)
	if err != nil {
		e.t.Fatalf("NewManager: %v", err)
	}
	if err := m.Start(e.t.Context()); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.m = m
}

// restart stops the manager, leaving its sandboxes running, and starts a
// new one on the same store and backend.
func (e *env) restart() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.start()
}

func (e *env) stop() {
	e.m.Close()
	e.be.Close()
}

func (e *env) create(owner string, mod func(*sandbox.CreateRequest)) sandbox.Record {
	e.t.Helper()
	req := sandbox.DefaultCreateRequest()
	if mod != nil {
		mod(&req)
	}
	rec, err := e.m.Create(e.t.Context(), owner, req)
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return rec
}

func (e *env) state(id string) sandbox.State {
	e.t.Helper()
	rec, err := e.store.GetSandbox(context.Background(), id)
	if err != nil {
		e.t.Fatalf("GetSandbox(%s): %v", id, err)
	}
	return rec.State
}

func (e *env) running(id string) bool {
	return slices.Contains(e.be.Running(), id)
}

func TestCreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		start := time.Now()
		rec := e.create("alice", func(r *sandbox.CreateRequest) {
			r.Width, r.Height, r.DPI = 1280, 800, 120
			r.Timeout = time.Minute
			r.Metadata = map[string]string{"task": "42"}
			r.Env = map[string]string{"B": "2", "A": "1"}
		})
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("Create returned after %v, want the agent's 2s to readiness", got)
		}
		if rec.State != sandbox.StateRunning || !sandbox.ValidID(rec.ID) || rec.Token == "" {
			t.Errorf("Create = state %q id %q token set %v; want running, a valid id and a token", rec.State, rec.ID, rec.Token != "")
		}
		if want := start.Add(2*time.Second + time.Minute); !rec.EndAt.Equal(want) {
			t.Errorf("EndAt = %v, want readiness + timeout = %v", rec.EndAt, want)
		}
		spec, _, _, ok := e.be.Sandbox(rec.ID)
		if !ok {
			t.Fatalf("the backend does not run %s", rec.ID)
		}
		want := sandbox.Spec{
			ID: rec.ID, RootFS: "/templates/desktop", Agent: "/usr/bin/cubicle",
			AgentArgs: []string{"--display", ":0", "--listen", "0.0.0.0:49983", "--resolution", "1280x800",
				"--dpi", "120", "--user", "user", "--inherit-env"},
			Env:      []string{"A=1", "B=2", "DISPLAY=:0", "CUBICLE_AGENT_TOKEN=" + rec.Token},
			Hostname: rec.ID,
			Network:  sandbox.NetworkPolicy{Internet: true},
		}
		if diff := cmp.Diff(want, spec); diff != "" {
			t.Errorf("spec given to the backend (-want +got):\n%s", diff)
		}
		rt, ok := e.m.Route(rec.ID)
		if !ok || rt.Agent.Port() != sandbox.AgentPort || rt.Token != rec.Token {
			t.Errorf("Route = %v %v %v; want the agent port and the sandbox's token", rt.Agent, rt.Token != "", ok)
		}
		got, err := e.m.Get(t.Context(), "alice", rec.ID)
		if err != nil || got.State != sandbox.StateRunning || got.Metadata["task"] != "42" {
			t.Errorf("Get = %+v, %v; want it running with its metadata", got, err)
		}
		evs, _ := e.store.Events(t.Context(), rec.ID)
		if len(evs) != 1 || evs[0].Kind != sandbox.EventCreated {
			t.Errorf("events = %+v, want one %q", evs, sandbox.EventCreated)
		}
	})
}

// envTemplates is a template that sets an environment.
type envTemplates map[string]string

func (t envTemplates) Resolve(name string) (sandbox.Template, error) {
	return sandbox.Template{RootFS: "/templates/" + name, Env: t}, nil
}

func TestCreateTemplateEnv(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnvWith(t, envTemplates{"LANG": "C.UTF-8", "MODE": "template"})
		defer e.stop()
		rec := e.create("alice", func(r *sandbox.CreateRequest) {
			r.Env = map[string]string{"MODE": "request", "A": "1"}
		})
		spec, _, _, ok := e.be.Sandbox(rec.ID)
		if !ok {
			t.Fatalf("the backend does not run %s", rec.ID)
		}
		want := []string{"A=1", "DISPLAY=:0", "LANG=C.UTF-8", "MODE=request", "CUBICLE_AGENT_TOKEN=" + rec.Token}
		if diff := cmp.Diff(want, spec.Env); diff != "" {
			t.Errorf("env given to the backend: the template's, overridden by the request's (-want +got):\n%s", diff)
		}
	})
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	tests := []struct {
		name    string
		arrange func(e *env)
		class   error
	}{
		{"backend fails", func(e *env) { e.be.FailNext("create", errors.New("no space left")) }, desktop.ErrInternal},
		{"desktop never ready", func(e *env) { e.be.SetReadyAfter(time.Hour) }, desktop.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				defer e.stop()
				tt.arrange(e)
				_, err := e.m.Create(t.Context(), "alice", sandbox.DefaultCreateRequest())
				if err == nil || desktop.Class(err) != tt.class {
					t.Fatalf("Create: %v (class %v), want class %v", err, desktop.Class(err), tt.class)
				}
				if got := e.be.Running(); len(got) != 0 {
					t.Errorf("the backend still runs %v", got)
				}
				recs, _ := e.store.ListSandboxes(t.Context(), sandbox.Filter{})
				if len(recs) != 0 {
					t.Errorf("the store still has %d records", len(recs))
				}
			})
		})
	}
}

func TestCreateRejects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		for name, mod := range map[string]func(*sandbox.CreateRequest){
			"unknown template": func(r *sandbox.CreateRequest) { r.Template = "nosuch" },
			"zero timeout":     func(r *sandbox.CreateRequest) { r.Timeout = 0 },
			"tiny screen":      func(r *sandbox.CreateRequest) { r.Width = 10 },
			"reserved env":     func(r *sandbox.CreateRequest) { r.Env = map[string]string{"DISPLAY": ":1"} },
		} {
			req := sandbox.DefaultCreateRequest()
			mod(&req)
			if _, err := e.m.Create(t.Context(), "alice", req); err == nil {
				t.Errorf("%s: Create succeeded", name)
			}
		}
		if got := e.be.Running(); len(got) != 0 {
			t.Errorf("the backend runs %v after refused creations", got)
		}
	})
}

func TestTimeoutKills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		rec := e.create("alice", func(r *sandbox.CreateRequest) { r.Timeout = 30 * time.Second })
		time.Sleep(time.Until(rec.EndAt) - time.Millisecond)
		synctest.Wait()
		if got := e.state(rec.ID); got != sandbox.StateRunning {
			t.Fatalf("1ms before its end the sandbox is %s, want running", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got := e.state(rec.ID); got != sandbox.StateKilled {
			t.Errorf("at its end the sandbox is %s, want killed", got)
		}
		if e.running(rec.ID) {
			t.Errorf("the backend still runs the timed-out sandbox")
		}
		if _, ok := e.m.Route(rec.ID); ok {
			t.Errorf("Resolve still finds the timed-out sandbox")
		}
		evs, _ := e.store.Events(t.Context(), rec.ID)
		if len(evs) == 0 || evs[len(evs)-1].Kind != sandbox.EventTimeout {
			t.Errorf("last event = %+v, want %q", evs, sandbox.EventTimeout)
		}
		if _, err := e.m.Connect(t.Context(), "alice", rec.ID, 0); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Connect to a timed-out sandbox: %v, want not found", err)
		}
	})
}

func TestSetTimeout(t *testing.T) {
	tests := []struct {
		name  string
		first time.Duration
		then  time.Duration
	}{
		{"extend", 10 * time.Second, time.Hour},
		{"shorten", time.Hour, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				defer e.stop()
				rec := e.create("alice", func(r *sandbox.CreateRequest) { r.Timeout = tt.first })
				time.Sleep(5 * time.Second)
				set := time.Now()
				rec, err := e.m.SetTimeout(t.Context(), "alice", rec.ID, tt.then)
				if err != nil {
					t.Fatalf("SetTimeout: %v", err)
				}
				if want := set.Add(tt.then); !rec.EndAt.Equal(want) {
					t.Errorf("EndAt = %v, want %v", rec.EndAt, want)
				}
				time.Sleep(time.Until(rec.EndAt) - time.Second)
				synctest.Wait()
				if got := e.state(rec.ID); got != sandbox.StateRunning {
					t.Errorf("1s before the new end: %s, want running", got)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if got := e.state(rec.ID); got != sandbox.StateKilled {
					t.Errorf("at the new end: %s, want killed", got)
				}
			})
		})
	}
}

func TestKillRetriesAfterBackendFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		rec := e.create("alice", func(r *sandbox.CreateRequest) { r.Timeout = 10 * time.Second })
		e.be.FailNext("destroy", errors.New("device busy"))
		time.Sleep(time.Until(rec.EndAt))
		synctest.Wait()
		if got := e.state(rec.ID); got != sandbox.StateRunning || !e.running(rec.ID) {
			t.Fatalf("after a failed destroy: %s, running %v; want it still running", got, e.running(rec.ID))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := e.state(rec.ID); got != sandbox.StateKilled || e.running(rec.ID) {
			t.Errorf("a minute later: %s, running %v; want killed", got, e.running(rec.ID))
		}
	})
}

func TestKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		rec := e.create("alice", nil)
		if err := e.m.Kill(t.Context(), "bob", rec.ID); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Kill by another owner: %v, want not found", err)
		}
		if err := e.m.Kill(t.Context(), "alice", rec.ID); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if e.running(rec.ID) || e.state(rec.ID) != sandbox.StateKilled {
			t.Errorf("after Kill: running %v, state %s", e.running(rec.ID), e.state(rec.ID))
		}
		if err := e.m.Kill(t.Context(), "alice", rec.ID); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Kill again: %v, want not found", err)
		}
		got, err := e.m.Get(t.Context(), "alice", rec.ID)
		if err != nil || got.State != sandbox.StateKilled || got.Ended.IsZero() {
			t.Errorf("Get after Kill = %s ended %v, %v; want killed with an end time", got.State, got.Ended, err)
		}
	})
}

func TestPauseConnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		rec := e.create("alice", func(r *sandbox.CreateRequest) { r.Timeout = time.Minute })
		if _, err := e.m.Resume(t.Context(), "alice", rec.ID); !errors.Is(err, desktop.ErrConflict) {
			t.Errorf("Resume of a running sandbox: %v, want conflict", err)
		}
		if _, err := e.m.Pause(t.Context(), "alice", rec.ID); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		if _, paused, _, _ := e.be.Sandbox(rec.ID); !paused {
			t.Errorf("the backend did not pause the sandbox")
		}
		if _, ok := e.m.Route(rec.ID); ok {
			t.Errorf("Resolve finds a paused sandbox")
		}
		if _, err := e.m.Pause(t.Context(), "alice", rec.ID); !errors.Is(err, desktop.ErrConflict) {
			t.Errorf("Pause again: %v, want conflict", err)
		}
		if _, err := e.m.Connect(t.Context(), "bob", rec.ID, 0); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Connect by another owner: %v, want not found", err)
		}
		got, err := e.m.Connect(t.Context(), "alice", rec.ID, time.Hour)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if _, paused, _, _ := e.be.Sandbox(rec.ID); paused || got.State != sandbox.StateRunning {
			t.Errorf("after Connect: backend paused %v, state %s; want running", paused, got.State)
		}
		if want := time.Now().Add(time.Hour); !got.EndAt.Equal(want) {
			t.Errorf("Connect with 1h: EndAt %v, want %v", got.EndAt, want)
		}
		again, err := e.m.Connect(t.Context(), "alice", rec.ID, time.Second)
		if err != nil || !again.EndAt.Equal(got.EndAt) {
			t.Errorf("Connect with a shorter timeout: EndAt %v, %v; want it unchanged at %v", again.EndAt, err, got.EndAt)
		}
	})
}

func TestRestartAdopts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		long := e.create("alice", func(r *sandbox.CreateRequest) { r.Timeout = time.Hour })
		short := e.create("alice", func(r *sandbox.CreateRequest) { r.Timeout = time.Minute })
		crashed := e.create("bob", nil)
		paused := e.create("bob", func(r *sandbox.CreateRequest) { r.Timeout = time.Hour })
		if _, err := e.m.Pause(t.Context(), "bob", paused.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.m.Close(); err != nil {
			t.Fatal(err)
		}
		if got := len(e.be.Running()); got != 4 {
			t.Fatalf("after Close the backend runs %d sandboxes, want all 4", got)
		}
		e.be.Crash(crashed.ID)
		time.Sleep(2 * time.Minute) // the server is down past short's end
		e.start()
		synctest.Wait()
		for _, tt := range []struct {
			rec   sandbox.Record
			state sandbox.State
			runs  bool
		}{
			{long, sandbox.StateRunning, true},
			{short, sandbox.StateKilled, false},
			{crashed, sandbox.StateKilled, false},
			{paused, sandbox.StatePaused, true},
		} {
			if got := e.state(tt.rec.ID); got != tt.state || e.running(tt.rec.ID) != tt.runs {
				t.Errorf("after restart %s is %s, running %v; want %s, %v", tt.rec.ID, got, e.running(tt.rec.ID), tt.state, tt.runs)
			}
		}
		if got := e.be.Leftovers(); len(got) != 0 {
			t.Errorf("leftovers after restart: %v, want none", got)
		}
		got, err := e.m.Get(t.Context(), "alice", long.ID)
		if err != nil || !got.EndAt.Equal(long.EndAt) {
			t.Errorf("adopted sandbox ends at %v (%v), want its old end %v", got.EndAt, err, long.EndAt)
		}
		if _, ok := e.m.Route(long.ID); !ok {
			t.Errorf("Resolve does not find the adopted sandbox")
		}
		time.Sleep(time.Until(long.EndAt))
		synctest.Wait()
		if got := e.state(long.ID); got != sandbox.StateKilled {
			t.Errorf("at its old end the adopted sandbox is %s, want killed", got)
		}
	})
}

func TestCloseCancelsCreate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		e.be.SetReadyAfter(time.Hour)
		errc := make(chan error, 1)
		go func() {
			_, err := e.m.Create(context.Background(), "alice", sandbox.DefaultCreateRequest())
			errc <- err
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := len(e.be.Running()); got != 1 {
			t.Fatalf("while creating, the backend runs %d sandboxes, want 1", got)
		}
		e.m.Close()
		if err := <-errc; err == nil {
			t.Fatal("Create cut short by Close succeeded")
		}
		if got := e.be.Running(); len(got) != 0 {
			t.Errorf("after Close cut a creation short, the backend runs %v", got)
		}
		if _, err := e.m.Create(t.Context(), "alice", sandbox.DefaultCreateRequest()); !errors.Is(err, desktop.ErrUnavailable) {
			t.Errorf("Create after Close: %v, want unavailable", err)
		}
	})
}

func TestListAndMetadata(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		var ids []string
		for i := range 7 {
			rec := e.create("alice", func(r *sandbox.CreateRequest) {
				r.Metadata = map[string]string{"parity": []string{"even", "odd"}[i%2]}
			})
			ids = append(ids, rec.ID)
		}
		e.create("bob", nil)
		if err := e.m.Kill(t.Context(), "alice", ids[0]); err != nil {
			t.Fatal(err)
		}
		var got []string
		var after sandbox.Cursor
		for {
			p, err := e.m.List(t.Context(), "alice", sandbox.ListQuery{Limit: 2, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Sandboxes {
				got = append(got, r.ID)
			}
			if p.Next.IsZero() {
				break
			}
			after = p.Next
		}
		if diff := cmp.Diff(ids[1:], got); diff != "" {
			t.Errorf("alice's live sandboxes in pages of 2 (-want +got):\n%s", diff)
		}
		p, err := e.m.List(t.Context(), "alice", sandbox.ListQuery{Metadata: map[string]string{"parity": "even"}})
		if err != nil || len(p.Sandboxes) != 3 {
			t.Errorf("even ones: %d, %v; want 3 (the killed one is left out)", len(p.Sandboxes), err)
		}
		rec, err := e.m.SetMetadata(t.Context(), "alice", ids[1], map[string]string{"new": "yes"})
		if err != nil || !cmp.Equal(rec.Metadata, map[string]string{"new": "yes"}) {
			t.Errorf("SetMetadata = %v, %v", rec.Metadata, err)
		}
		p, err = e.m.List(t.Context(), "alice", sandbox.ListQuery{States: []sandbox.State{sandbox.StateKilled}})
		if err != nil || len(p.Sandboxes) != 1 || p.Sandboxes[0].ID != ids[0] {
			t.Errorf("killed ones: %+v, %v; want only %s", p.Sandboxes, err, ids[0])
		}
	})
}
