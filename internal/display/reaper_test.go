package display

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/cubicle-dev/cubicle/internal/reaper"
)

// reaperChildEnv marks the re-executed test binary that runs a desktop as a
// child subreaper, the way the agent runs as pid 1.
const reaperChildEnv = "CUBICLE_DISPLAY_TEST_SUBREAPER"

// TestWithReaper runs TestSubreaperDesktop in a process of its own: being a
// subreaper changes where every orphan of the process goes, which the other
// tests must not see.
func TestWithReaper(t *testing.T) {
	needTools(t, "Xvfb", "dbus-daemon", "xfce4-session")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSubreaperDesktop$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), reaperChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("desktop under a subreaper: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestSubreaperDesktop(t *testing.T) {
	if os.Getenv(reaperChildEnv) == "" {
		t.Skip("runs inside TestWithReaper")
	}
	if err := reaper.EnableSubreaper(); err != nil {
		t.Fatal(err)
	}
	r := reaper.New(testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	home := tempHome(t, os.Getuid(), os.Getgid())
	s, _ := startFree(t, Config{User: selfUser(home), Reaper: r})
	xc := xconn(t, s.cfg.Display)
	a := &atoms{xc: xc}
	waitFor(t, "the xfce4-panel window and a window manager", func() bool { return panelUp(xc, a) })
	// The session's daemons were re-parented to us.
	orphans := 0
	for _, pid := range taggedPIDs(s.ID()) {
		if ppid(pid) == os.Getpid() && pid != partPID(s, partXvfb) && pid != partPID(s, partBus) && pid != partPID(s, partSession) {
			orphans++
		}
	}
	if orphans == 0 {
		t.Errorf("no daemon of the session was re-parented to the subreaper")
	}
	// Close must still see the exit of every process it waits for, and
	// the reaper the rest: closeDesktop checks for tagged processes and
	// zombies.
	closeDesktop(t, s)
	waitFor(t, "no zombie children", func() bool { return len(zombieChildren()) == 0 })
}
