package sandbox_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// TestRoutePublicPorts checks that a sandbox's PublicPorts reach the
// proxy's route, and stay through pause, resume and a restart of the
// manager.
func TestRoutePublicPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		hour := func(r *sandbox.CreateRequest) { r.Timeout = time.Hour }
		private := e.create("alice", hour)
		public := e.create("alice", func(r *sandbox.CreateRequest) { hour(r); r.PublicPorts = true })
		check := func(when string) {
			t.Helper()
			for _, tc := range []struct {
				rec  sandbox.Record
				want bool
			}{{private, false}, {public, true}} {
				rt, ok := e.m.Route(tc.rec.ID)
				if !ok || rt.PublicPorts != tc.want || rt.Token != tc.rec.Token || rt.Agent.Port() != sandbox.AgentPort {
					t.Errorf("%s: Route(%s) = public %v, token ok %v, port %d, %v; want public %v, its token, the agent port",
						when, tc.rec.ID, rt.PublicPorts, rt.Token == tc.rec.Token, rt.Agent.Port(), ok, tc.want)
				}
				got, err := e.m.Get(t.Context(), "alice", tc.rec.ID)
				if err != nil || got.Params.PublicPorts != tc.want {
					t.Errorf("%s: Get(%s).Params.PublicPorts = %v (%v), want %v", when, tc.rec.ID, got.Params.PublicPorts, err, tc.want)
				}
			}
		}
		check("after create")

		if _, err := e.m.Pause(t.Context(), "alice", public.ID); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.m.Route(public.ID); ok {
			t.Errorf("Route finds a paused sandbox")
		}
		if _, err := e.m.Connect(t.Context(), "alice", public.ID, 0); err != nil {
			t.Fatal(err)
		}
		check("after pause and connect")

		e.restart()
		synctest.Wait()
		check("after a restart")
	})
}

// TestFindRoute checks that FindRoute names the one running sandbox that
// matches, and none when no sandbox or several do.
func TestFindRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		hour := func(r *sandbox.CreateRequest) { r.Timeout = time.Hour }
		a := e.create("alice", hour)
		b := e.create("bob", hour)
		byToken := func(tok string) func(string, sandbox.Route) bool {
			return func(_ string, r sandbox.Route) bool { return r.Token == tok }
		}
		tests := []struct {
			name   string
			match  func(string, sandbox.Route) bool
			want   string
			wantOK bool
		}{
			{"a's token", byToken(a.Token), a.ID, true},
			{"b's token", byToken(b.Token), b.ID, true},
			{"no one's token", byToken("nope"), "", false},
			{"every sandbox", func(string, sandbox.Route) bool { return true }, "", false},
		}
		for _, tt := range tests {
			if id, ok := e.m.FindRoute(tt.match); id != tt.want || ok != tt.wantOK {
				t.Errorf("%s: FindRoute = %q, %v; want %q, %v", tt.name, id, ok, tt.want, tt.wantOK)
			}
		}
		if _, err := e.m.Pause(t.Context(), "alice", a.ID); err != nil {
			t.Fatal(err)
		}
		if id, ok := e.m.FindRoute(byToken(a.Token)); ok {
			t.Errorf("FindRoute finds the paused sandbox %s", id)
		}
	})
}
