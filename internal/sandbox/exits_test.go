package sandbox_test

import (
	"testing"
	"testing/synctest"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func TestAgentExitRemovesTheSandbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		defer e.stop()
		crashed := e.create("alice", nil)
		other := e.create("alice", nil)
		e.be.Crash(crashed.ID)
		synctest.Wait()
		if got := e.state(crashed.ID); got != sandbox.StateKilled {
			t.Errorf("a sandbox whose agent exited is %s, want %s", got, sandbox.StateKilled)
		}
		if got := e.be.Leftovers(); len(got) != 0 {
			t.Errorf("leftovers after the agent exited: %v, want none", got)
		}
		evs, err := e.store.Events(t.Context(), crashed.ID)
		if err != nil {
			t.Fatal(err)
		}
		if last := evs[len(evs)-1]; last.Kind != sandbox.EventLost {
			t.Errorf("last event %q, want %q", last.Kind, sandbox.EventLost)
		}
		if got := e.state(other.ID); got != sandbox.StateRunning || !e.running(other.ID) {
			t.Errorf("the other sandbox is %s, running %v; want running", got, e.running(other.ID))
		}
	})
}
