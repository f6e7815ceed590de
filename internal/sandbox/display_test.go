package sandbox_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

func TestCreateDisplayModes(t *testing.T) {
	tests := []struct {
		name      string
		mode      sandbox.DisplayMode
		env       map[string]string
		wantEnv   []string // the environment before the token
		wantFlags []string // agent flags that must be there
	}{
		{"managed", sandbox.DisplayManaged, map[string]string{"A": "1"},
			[]string{"A=1", "DISPLAY=:0"}, []string{"--display", ":0"}},
		{"external default display", sandbox.DisplayExternal, map[string]string{"A": "1"},
			[]string{"A=1", "DISPLAY=:0"}, []string{"--display-mode", "external"}},
		{"external own display", sandbox.DisplayExternal, map[string]string{"DISPLAY": ":1"},
			[]string{"DISPLAY=:1"}, []string{"--display", ":0"}},
	}
	// The fake agents' desktops are ready after 2s (newEnv); their envd
	// answers at once.
	wait := map[sandbox.DisplayMode]time.Duration{sandbox.DisplayManaged: 2 * time.Second, sandbox.DisplayExternal: 0}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				defer e.stop()
				start := time.Now()
				rec := e.create("alice", func(r *sandbox.CreateRequest) {
					r.DisplayMode, r.Env = tt.mode, tt.env
				})
				if got := time.Since(start); got != wait[tt.mode] {
					t.Errorf("Create returned after %v, want %v", got, wait[tt.mode])
				}
				if rec.Params.DisplayMode != tt.mode {
					t.Errorf("Params.DisplayMode = %q, want %q", rec.Params.DisplayMode, tt.mode)
				}
				spec, _, _, ok := e.be.Sandbox(rec.ID)
				if !ok {
					t.Fatalf("the backend does not run %s", rec.ID)
				}
				want := append(slices.Clone(tt.wantEnv), "CUBICLE_AGENT_TOKEN="+rec.Token)
				if !slices.Equal(spec.Env, want) {
					t.Errorf("Env = %q, want %q", redact(spec.Env, rec.Token), redact(want, rec.Token))
				}
				if got := slices.Contains(spec.AgentArgs, "--display-mode"); got != (tt.mode == sandbox.DisplayExternal) {
					t.Errorf("AgentArgs = %q: --display-mode given %v, want %v", spec.AgentArgs, got, !got)
				}
				i := slices.Index(spec.AgentArgs, tt.wantFlags[0])
				if i < 0 || i+len(tt.wantFlags) > len(spec.AgentArgs) || !slices.Equal(spec.AgentArgs[i:i+len(tt.wantFlags)], tt.wantFlags) {
					t.Errorf("AgentArgs = %q, want them to hold %q", spec.AgentArgs, tt.wantFlags)
				}
			})
		})
	}
}

func redact(env []string, token string) []string {
	out := slices.Clone(env)
	for i, kv := range out {
		if kv == "CUBICLE_AGENT_TOKEN="+token {
			out[i] = "CUBICLE_AGENT_TOKEN=<token>"
		}
	}
	return out
}
