package server_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
	"github.com/cubicle-dev/cubicle/internal/server"
)

// closingProxy records the sandboxes the server tells it to cut.
type closingProxy struct {
	http.Handler
	mu     sync.Mutex
	closed []string
}

func (p *closingProxy) CloseSandbox(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = append(p.closed, id)
}

func (p *closingProxy) cut(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.closed, id)
}

func TestProxyCutsSandboxesThatStop(t *testing.T) {
	be := sandboxtest.NewBackend(sandboxtest.Options{})
	defer be.Close()
	p := &closingProxy{}
	r := startServer(t, options{dir: t.TempDir(), be: be, proxy: func(resolve server.ResolveFunc) (http.Handler, error) {
		h, err := newTestProxy(resolve)
		p.Handler = h
		return p, err
	}})
	defer r.stop()
	key := r.key("alice")
	killed, paused, crashed, kept := r.create(key, nil), r.create(key, nil), r.create(key, nil), r.create(key, nil)
	if st := r.call(key, "DELETE", "/v1/sandboxes/"+killed.ID, nil, nil); st != http.StatusNoContent {
		t.Fatalf("kill: %d", st)
	}
	if st := r.call(key, "POST", "/v1/sandboxes/"+paused.ID+"/pause", nil, nil); st != http.StatusNoContent {
		t.Fatalf("pause: %d", st)
	}
	be.Crash(crashed.ID)
	deadline := time.Now().Add(time.Minute)
	for _, id := range []string{killed.ID, paused.ID, crashed.ID} {
		for !p.cut(id) {
			if time.Now().After(deadline) {
				t.Fatalf("the proxy was never told to cut %s", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if p.cut(kept.ID) {
		t.Errorf("the proxy was told to cut %s, which still runs", kept.ID)
	}
}
