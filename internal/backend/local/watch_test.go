package local

import (
	"syscall"
	"testing"
	"time"
)

func TestExitedReportsAnInitThatDies(t *testing.T) {
	h := newHarness(t)
	rootfs := busyboxRootFS(t)
	a := h.create(h.spec(rootfs, "run", "true"))
	bSpec := h.spec(rootfs, "run", "true")
	h.create(bSpec)
	// Destroy does not report: B goes first, then A's init is killed
	// from outside, and A must be the first (and only) id reported.
	if err := h.b.Destroy(t.Context(), bSpec.ID); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(a.InitPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-h.b.Exited():
		if id != a.ID {
			t.Errorf("Exited reported %s, want %s (whose init was killed)", id, a.ID)
		}
	case <-time.After(time.Minute):
		t.Fatal("Exited reported nothing a minute after the init was killed")
	}
	// The sandbox is still there to destroy; the harness checks that
	// nothing is left.
	if err := h.b.Destroy(t.Context(), a.ID); err != nil {
		t.Fatalf("Destroy after the init died: %v", err)
	}
}

func TestCloseEndsExited(t *testing.T) {
	h := newHarness(t)
	h.create(h.spec(busyboxRootFS(t), "run", "true"))
	if err := h.b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-h.b.Exited(); ok {
		t.Error("Exited still open after Close")
	}
}
