package sandboxtest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
	"github.com/cubicle-dev/cubicle/internal/sandbox/sandboxtest"
)

func TestFakeStore(t *testing.T) {
	sandboxtest.TestStore(t, func(t *testing.T) sandbox.Store { return sandboxtest.NewStore() })
}

func testSpec() sandbox.Spec {
	return sandbox.Spec{
		RootFS:    "/var/lib/cubicle/templates/desktop",
		Agent:     "/usr/local/bin/cubicle",
		AgentArgs: sandbox.AgentArgs(sandbox.Params{Width: 1024, Height: 768, DPI: 96}),
		Env:       []string{"DISPLAY=:0"},
	}
}

func TestFakeBackend(t *testing.T) {
	sandboxtest.TestBackend(t, func() sandbox.Backend {
		b := sandboxtest.NewBackend(sandboxtest.Options{ReadyAfter: 200 * time.Millisecond})
		t.Cleanup(b.Close)
		return b
	}, testSpec())
}

func TestFakeBackendCrashAndReclaim(t *testing.T) {
	b := sandboxtest.NewBackend(sandboxtest.Options{})
	t.Cleanup(b.Close)
	spec := testSpec()
	spec.ID = sandbox.NewID()
	inst, err := b.Create(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	b.Crash(inst.ID)
	if got := b.Leftovers(); len(got) != 1 || got[0] != inst.ID {
		t.Fatalf("Leftovers after Crash = %v, want [%s]", got, inst.ID)
	}
	if err := b.Adopt(t.Context(), *inst); err == nil {
		t.Errorf("Adopt of a crashed sandbox succeeded")
	}
	if err := b.Reclaim(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if got := b.Leftovers(); len(got) != 0 {
		t.Errorf("Leftovers after Reclaim = %v, want none", got)
	}
	if got := b.Reclaimed(); len(got) != 1 || got[0] != inst.ID {
		t.Errorf("Reclaimed = %v, want [%s]", got, inst.ID)
	}
}

// TestNetworkInBubble serves HTTP over the in-memory network inside a
// synctest bubble and lets fake time pass while a request waits.
func TestNetworkInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := sandboxtest.NewNetwork()
		ln, err := n.Listen("10.0.0.1:80")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Listen("10.0.0.1:80"); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("second Listen on the same address: %v, want EADDRINUSE", err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Hour)
			io.WriteString(w, "late")
		})}
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(ln) }()
		tr := &http.Transport{DialContext: n.DialContext}
		c := &http.Client{Transport: tr}
		start := time.Now()
		resp, err := c.Get("http://10.0.0.1:80/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "late" || time.Since(start) != time.Hour {
			t.Errorf("got %q after %v, want \"late\" after 1h of fake time", body, time.Since(start))
		}
		if _, err := n.DialContext(context.Background(), "tcp", "10.0.0.2:80"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial with no listener: %v, want ECONNREFUSED", err)
		}
		tr.CloseIdleConnections()
		srv.Close()
		<-done
		var ne net.Error
		if _, err := n.DialContext(context.Background(), "tcp", "10.0.0.1:80"); !errors.As(err, &ne) {
			t.Errorf("dial after the listener closed: %v, want a net.Error", err)
		}
	})
}
