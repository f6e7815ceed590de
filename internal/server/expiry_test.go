package server_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// TestTimeoutsOverHTTP runs the whole server in a synctest bubble, over
// the in-memory network, so that timeouts pass in fake time.
func TestTimeoutsOverHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := sandboxtest.NewNetwork()
		be := sandboxtest.NewBackend(sandboxtest.Options{Net: n, ReadyAfter: 3 * time.Second})
		defer be.Close()
		dir := t.TempDir()
		r := startServer(t, options{dir: dir, be: be, net: n})
		key := r.srv.FirstKey()

		start := time.Now()
		expires := r.create(key, map[string]any{"timeout_s": 30})
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("create answered after %v, want when the desktop was ready (3s)", got)
		}
		extended := r.create(key, map[string]any{"timeout_s": 30})
		shortened := r.create(key, map[string]any{"timeout_s": 3600})
		var ext, short apitype.Sandbox
		if st := r.call(key, "POST", "/v1/sandboxes/"+extended.ID+"/timeout", `{"timeout_s":120}`, &ext); st != 200 {
			t.Fatalf("extend: %d", st)
		}
		if want := time.Now().Add(120 * time.Second); !ext.EndAt.Equal(want) {
			t.Errorf("extended end_at = %v, want %v", ext.EndAt, want)
		}
		if st := r.call(key, "POST", "/v1/sandboxes/"+shortened.ID+"/timeout", `{"timeout_s":10}`, &short); st != 200 {
			t.Fatalf("shorten: %d", st)
		}
		check := func(when string, want map[string]string) {
			t.Helper()
			synctest.Wait()
			for id, state := range want {
				got, st := r.get(key, id)
				if st != 200 || got.State != state {
					t.Errorf("%s: %s is %d %q, want %q", when, id, st, got.State, state)
				}
			}
		}
		check("at once", map[string]string{expires.ID: "running", extended.ID: "running", shortened.ID: "running"})
		time.Sleep(11 * time.Second)
		check("after 11s", map[string]string{expires.ID: "running", extended.ID: "running", shortened.ID: "killed"})
		time.Sleep(time.Until(expires.EndAt))
		check("at the first end", map[string]string{expires.ID: "killed", extended.ID: "running"})

		// A restart keeps the end of the extended sandbox.
		r.stop()
		r = startServer(t, options{dir: dir, be: be, net: n})
		check("after restart", map[string]string{extended.ID: "running"})
		time.Sleep(time.Until(ext.EndAt) - time.Second)
		check("a second before its end", map[string]string{extended.ID: "running"})
		time.Sleep(time.Second)
		check("at its end", map[string]string{extended.ID: "killed"})
		if got := be.Running(); len(got) != 0 {
			t.Errorf("the backend still runs %v", got)
		}
		r.stop()
	})
}
