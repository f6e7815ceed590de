package server_test

import (
	"testing"

	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// BenchmarkCreateKill is the server's own cost of a sandbox's life over
// HTTP: auth, validation, store writes, the readiness request to a fake
// agent that is ready at once, and the kill.
func BenchmarkCreateKill(b *testing.B) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	r := startServer(b, options{dir: b.TempDir(), be: be})
	defer r.stop()
	key := r.srv.FirstKey()
	for b.Loop() {
		s := r.create(key, map[string]any{"metadata": map[string]string{"k": "v"}})
		if st := r.call(key, "DELETE", "/v1/sandboxes/"+s.ID, nil, nil); st != 204 {
			b.Fatalf("kill: %d", st)
		}
	}
}

// BenchmarkListPage lists a page of 100 of 300 sandboxes filtered by
// metadata.
func BenchmarkListPage(b *testing.B) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	r := startServer(b, options{dir: b.TempDir(), be: be})
	defer r.stop()
	key := r.srv.FirstKey()
	createMany(b, r, key, 300)
	for b.Loop() {
		l, st := r.list(key, "metadata=mod3=0&limit=100&state=running")
		if st != 200 || len(l.Sandboxes) != 100 {
			b.Fatalf("list: %d, %d sandboxes", st, len(l.Sandboxes))
		}
	}
}
