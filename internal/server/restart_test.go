package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
	"github.com/cubicle-dev/cubicle/internal/store"
)

func TestRestartAdoptsAndReclaims(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	dir := t.TempDir()
	r := startServer(t, options{dir: dir, be: be})
	first := r.srv.FirstKey()
	key := r.key("alice")
	keep := r.create(key, map[string]any{"timeout_s": 3600})
	paused := r.create(key, map[string]any{"timeout_s": 3600})
	crashed := r.create(key, map[string]any{"timeout_s": 3600})
	if st := r.call(key, "POST", "/v1/sandboxes/"+paused.ID+"/pause", nil, nil); st != 204 {
		t.Fatalf("pause: %d", st)
	}
	r.stop()

	if got, want := be.Running(), sortedIDs(keep.ID, paused.ID, crashed.ID); !slices.Equal(got, want) {
		t.Fatalf("after the server stopped the backend runs %v, want %v: stopping must not kill", got, want)
	}
	be.Crash(crashed.ID)
	// A sandbox the store does not know, as a crash between the backend
	// and the store would leave.
	orphan := sandbox.NewID()
	if _, err := be.Create(context.Background(), sandbox.Spec{ID: orphan, RootFS: "/templates/desktop", Agent: "/usr/bin/cubicle"}); err != nil {
		t.Fatal(err)
	}

	r = startServer(t, options{dir: dir, be: be})
	defer r.stop()
	if r.srv.FirstKey() != "" {
		t.Errorf("the second start issued another first key")
	}
	for _, k := range []string{first, key} {
		if _, st := r.list(k, ""); st != http.StatusOK {
			t.Errorf("a key of the first run gets %d after the restart", st)
		}
	}
	for _, tt := range []struct {
		id    string
		state string
	}{{keep.ID, "running"}, {paused.ID, "paused"}, {crashed.ID, "killed"}} {
		got, st := r.get(key, tt.id)
		if st != 200 || got.State != tt.state {
			t.Errorf("after restart %s: %d state %q, want %q", tt.id, st, got.State, tt.state)
		}
	}
	got, _ := r.get(key, keep.ID)
	if !got.EndAt.Equal(keep.EndAt) || got.AccessToken != keep.AccessToken {
		t.Errorf("adopted sandbox: end_at %v token kept %v; want its old end_at %v and token", got.EndAt,
			got.AccessToken == keep.AccessToken, keep.EndAt)
	}
	if left := be.Leftovers(); len(left) != 0 {
		t.Errorf("leftovers after restart: %v", left)
	}
	if !slices.Equal(be.Reclaimed(), []string{orphan}) || slices.Contains(be.Running(), orphan) {
		t.Errorf("Reclaimed = %v, want the orphan %s", be.Reclaimed(), orphan)
	}
	if got, want := be.Running(), sortedIDs(keep.ID, paused.ID); !slices.Equal(got, want) {
		t.Errorf("after restart the backend runs %v, want %v", got, want)
	}
	var s map[string]any
	if st := r.call(key, "POST", "/v1/sandboxes/"+paused.ID+"/connect", nil, &s); st != 200 || s["state"] != "running" {
		t.Errorf("connect to the adopted paused sandbox: %d %v", st, s["state"])
	}
	if st := r.call(key, "DELETE", "/v1/sandboxes/"+keep.ID, nil, nil); st != 204 {
		t.Errorf("kill the adopted sandbox: %d", st)
	}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// TestCreateKillCycles runs 200 create/kill cycles, four at a time, and
// checks that the store and the backend agree afterwards.
func TestCreateKillCycles(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	dir := t.TempDir()
	r := startServer(t, options{dir: dir, be: be})
	key := r.key("alice")
	const cycles = 200
	ids := make(chan string, cycles)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for range cycles / 4 {
				s := r.create(key, map[string]any{"metadata": map[string]string{"worker": string(rune('a' + w))}})
				if st := r.call(key, "DELETE", "/v1/sandboxes/"+s.ID, nil, nil); st != 204 {
					t.Errorf("kill %s: %d", s.ID, st)
				}
				ids <- s.ID
			}
		})
	}
	wg.Wait()
	close(ids)
	if got := be.Running(); len(got) != 0 {
		t.Errorf("the backend still runs %d sandboxes", len(got))
	}
	if l, _ := r.list(key, "state=starting,running,paused"); len(l.Sandboxes) != 0 {
		t.Errorf("%d sandboxes listed as live", len(l.Sandboxes))
	}
	killed, _ := listAll(t, r, key, "state=killed")
	if len(killed) != cycles {
		t.Errorf("%d killed sandboxes listed, want %d", len(killed), cycles)
	}
	r.stop()

	st, err := store.Open(context.Background(), filepath.Join(dir, "cubicle.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.ListSandboxes(context.Background(), sandbox.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != cycles {
		t.Errorf("the store has %d sandboxes, want %d", len(recs), cycles)
	}
	for id := range ids {
		rec, err := st.GetSandbox(context.Background(), id)
		if err != nil {
			t.Errorf("sandbox %s: %v", id, err)
			continue
		}
		if rec.State != sandbox.StateKilled || rec.Ended.IsZero() || rec.Instance == nil {
			t.Errorf("sandbox %s: state %s, ended %v, instance %v; want killed with an end and its instance", id, rec.State, rec.Ended, rec.Instance != nil)
		}
		evs, err := st.Events(context.Background(), id)
		if err != nil || len(evs) != 2 || evs[0].Kind != sandbox.EventCreated || evs[1].Kind != sandbox.EventKilled {
			t.Errorf("events of %s: %+v, %v; want created then killed", id, evs, err)
		}
	}
}
