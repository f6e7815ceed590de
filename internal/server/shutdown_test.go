package server_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

// TestShutdownCutsCreationShort stops the server while a creation waits
// for a desktop that is never ready: the server waits its shutdown
// timeout, then the creation is cut short and destroys what it made, and
// the sandboxes that were ready keep running.
func TestShutdownCutsCreationShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := sandboxtest.NewNetwork()
		be := sandboxtest.NewBackend(sandboxtest.Options{Net: n})
		defer be.Close()
		r := startServer(t, options{dir: t.TempDir(), be: be, net: n})
		key := r.srv.FirstKey()
		ready := r.create(key, nil)
		be.SetReadyAfter(time.Hour)
		answered := make(chan int, 1)
		go func() {
			req, _ := newRequest(r.url+"/v1/sandboxes", key)
			resp, err := r.client.Do(req)
			if err != nil {
				answered <- 0
				return
			}
			resp.Body.Close()
			answered <- resp.StatusCode
		}()
		time.Sleep(time.Second)
		synctest.Wait()
		if got := len(be.Running()); got != 2 {
			t.Fatalf("while creating, the backend runs %d sandboxes, want 2", got)
		}
		start := time.Now()
		r.stop()
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("the server stopped after %v, want its shutdown timeout of 5s", got)
		}
		if st := <-answered; st == 201 {
			t.Errorf("the cut-short creation answered 201")
		}
		if got := be.Running(); len(got) != 1 || got[0] != ready.ID {
			t.Errorf("after shutdown the backend runs %v, want only the ready %s", got, ready.ID)
		}
	})
}
