package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// readyDeadline bounds the wait for a sandbox's agent in TestBackend; a
// real desktop on a loaded machine takes seconds.
const readyDeadline = 3 * time.Minute

// TestBackend is the conformance suite of sandbox.Backend. newBackend
// returns a backend for each subtest (the caller releases it in a cleanup
// of its own); spec is a sandbox to create, whose ID the suite replaces.
// Its AgentArgs give the agent's access token with --token. The suite
// reaches agents over TCP at Instance.Addr:sandbox.AgentPort.
func TestBackend(t *testing.T, newBackend func() sandbox.Backend, spec sandbox.Spec) {
	token := envValue(spec.Env, "CUBICLE_AGENT_TOKEN")
	create := func(t *testing.T, b sandbox.Backend) *sandbox.Instance {
		t.Helper()
		s := spec
		s.ID = sandbox.NewID()
		inst, err := b.Create(t.Context(), s)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		t.Cleanup(func() { b.Destroy(context.Background(), s.ID) })
		if inst.ID != s.ID || !inst.Addr.IsValid() || inst.Started.IsZero() {
			t.Fatalf("Create returned %+v: want ID %s, a valid Addr and a start time", inst, s.ID)
		}
		return inst
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

	t.Run("create, reach the agent, destroy", func(t *testing.T) {
		b := newBackend()
		inst := create(t, b)
		waitStatus(t, client, inst.Addr, "/v1/ready?wait=10s", token, http.StatusOK)
		if token != "" {
			if got, err := get(t.Context(), client, inst.Addr, "/v1/ready", "wrong"+token); err != nil || got != http.StatusUnauthorized {
				t.Errorf("GET /v1/ready with a wrong token: status %d, %v; want %d", got, err, http.StatusUnauthorized)
			}
		}
		if err := b.Destroy(t.Context(), inst.ID); err != nil {
			t.Fatalf("Destroy: %v", err)
		}
		if got, err := get(t.Context(), client, inst.Addr, "/health", token); err == nil {
			t.Errorf("GET /health after Destroy: status %d, want no answer", got)
		}
		if err := b.Destroy(t.Context(), inst.ID); err != nil {
			t.Errorf("Destroy again: %v, want nil", err)
		}
		if _, err := b.Stats(t.Context(), inst.ID); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Stats after Destroy: %v, want a desktop.ErrNotFound", err)
		}
	})

	t.Run("pause and resume", func(t *testing.T) {
		b := newBackend()
		inst := create(t, b)
		waitStatus(t, client, inst.Addr, "/health", token, http.StatusNoContent)
		if err := b.Pause(t.Context(), inst.ID); err != nil {
			t.Fatalf("Pause: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		got, err := get(ctx, client, inst.Addr, "/health", token)
		cancel()
		if err == nil {
			t.Errorf("GET /health while paused: status %d, want no answer", got)
		}
		if err := b.Resume(t.Context(), inst.ID); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		waitStatus(t, client, inst.Addr, "/health", token, http.StatusNoContent)
	})

	t.Run("network and stats", func(t *testing.T) {
		b := newBackend()
		inst := create(t, b)
		p := sandbox.NetworkPolicy{Internet: false, AllowOut: []netip.Prefix{netip.MustParsePrefix("1.1.1.1/32")}}
		if err := b.SetNetwork(t.Context(), inst.ID, p); err != nil {
			t.Errorf("SetNetwork: %v", err)
		}
		st, err := b.Stats(t.Context(), inst.ID)
		if err != nil {
			t.Fatalf("Stats: %v", err)
		}
		if st.CPUCount < 1 || st.MemTotal <= 0 || st.MemUsed < 0 || st.DiskUsed < 0 {
			t.Errorf("Stats = %+v: want at least one CPU, a memory total and no negative use", st)
		}
	})

	t.Run("adopt", func(t *testing.T) {
		b := newBackend()
		inst := create(t, b)
		if err := b.Adopt(t.Context(), *inst); err != nil {
			t.Errorf("Adopt of a running sandbox: %v", err)
		}
		other := *inst
		other.InitStart++
		if err := b.Adopt(t.Context(), other); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Adopt with another init start time (a reused pid): %v, want a desktop.ErrNotFound", err)
		}
		if err := b.Destroy(t.Context(), inst.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.Adopt(t.Context(), *inst); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Adopt of a destroyed sandbox: %v, want a desktop.ErrNotFound", err)
		}
	})

	t.Run("reclaim", func(t *testing.T) {
		b := newBackend()
		keep, drop := create(t, b), create(t, b)
		waitStatus(t, client, drop.Addr, "/health", token, http.StatusNoContent)
		if err := b.Reclaim(t.Context(), map[string]bool{keep.ID: true}); err != nil {
			t.Fatalf("Reclaim: %v", err)
		}
		if got, err := get(t.Context(), client, drop.Addr, "/health", token); err == nil {
			t.Errorf("GET /health of a reclaimed sandbox: status %d, want no answer", got)
		}
		if err := b.Adopt(t.Context(), *drop); !errors.Is(err, desktop.ErrNotFound) {
			t.Errorf("Adopt of a reclaimed sandbox: %v, want a desktop.ErrNotFound", err)
		}
		waitStatus(t, client, keep.Addr, "/health", token, http.StatusNoContent)
		if err := b.Adopt(t.Context(), *keep); err != nil {
			t.Errorf("Adopt of the kept sandbox: %v", err)
		}
	})

	t.Run("unknown ids", func(t *testing.T) {
		b := newBackend()
		id := sandbox.NewID()
		ctx := t.Context()
		if err := b.Destroy(ctx, id); err != nil {
			t.Errorf("Destroy: %v, want nil", err)
		}
		for name, call := range map[string]func() error{
			"Pause":      func() error { return b.Pause(ctx, id) },
			"Resume":     func() error { return b.Resume(ctx, id) },
			"SetNetwork": func() error { return b.SetNetwork(ctx, id, sandbox.NetworkPolicy{}) },
			"Stats":      func() error { _, err := b.Stats(ctx, id); return err },
			"Adopt":      func() error { return b.Adopt(ctx, sandbox.Instance{ID: id, InitPID: 1 << 22}) },
		} {
			if err := call(); !errors.Is(err, desktop.ErrNotFound) {
				t.Errorf("%s of an unknown id: %v, want a desktop.ErrNotFound", name, err)
			}
		}
	})

	t.Run("cancelled create", func(t *testing.T) {
		b := newBackend()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		s := spec
		s.ID = sandbox.NewID()
		if inst, err := b.Create(ctx, s); err == nil {
			b.Destroy(context.Background(), s.ID)
			t.Fatalf("Create with a cancelled context returned %+v, want an error", inst)
		}
		if err := b.Destroy(t.Context(), s.ID); err != nil {
			t.Errorf("Destroy after a cancelled Create: %v", err)
		}
	})
}

func get(ctx context.Context, c *http.Client, addr netip.Addr, path, token string) (int, error) {
	url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(addr, sandbox.AgentPort), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Access-Token", token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitStatus polls path on the agent until it answers want.
func waitStatus(t *testing.T, c *http.Client, addr netip.Addr, path, token string, want int) {
	t.Helper()
	deadline := time.Now().Add(readyDeadline)
	var (
		got int
		err error
	)
	for time.Now().Before(deadline) {
		got, err = get(t.Context(), c, addr, path, token)
		if err == nil && got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s on %s: status %d, %v; want %d within %s", path, addr, got, err, want, readyDeadline)
}
