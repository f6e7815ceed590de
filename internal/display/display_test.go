package display

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "zero is the default desktop", cfg: Config{}, ok: true},
		{name: "bare server", cfg: Config{Display: 7, Session: SessionNone, Width: 1920, Height: 1080}, ok: true},
		{name: "user", cfg: Config{User: &User{UID: 1000, GID: 1000, Name: "u", Home: "/home/u"}}, ok: true},
		{name: "negative display", cfg: Config{Display: -1}},
		{name: "huge width", cfg: Config{Width: 100000}},
		{name: "odd depth", cfg: Config{Depth: 12}},
		{name: "negative dpi", cfg: Config{DPI: -5}},
		{name: "unknown session", cfg: Config{Session: "gnome"}},
		{name: "port out of range", cfg: Config{VNCPort: 70000}},
		{name: "user without name", cfg: Config{User: &User{UID: 1, Home: "/"}}},
		{name: "relative home", cfg: Config{User: &User{UID: 1, Name: "u", Home: "home/u"}}},
		{name: "env without =", cfg: Config{Env: []string{"FOO"}}},
		{name: "env with empty key", cfg: Config{Env: []string{"=x"}}},
		{name: "env sets the tag", cfg: Config{Env: []string{TagEnv + "=x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("Validate() = %v, want an error of class ErrInvalid", err)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	s, err := New(Config{
		Display: 12,
		User:    &User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Name: "alice", Home: "/home/alice"},
		Env:     []string{"LANG=de_DE.UTF-8", "FOO=bar"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("Env() has %s twice", k)
		}
		got[k] = v
	}
	want := map[string]string{
		"DISPLAY":             ":12",
		"HOME":                "/home/alice",
		"USER":                "alice",
		"LANG":                "de_DE.UTF-8",
		"FOO":                 "bar",
		"XDG_SESSION_TYPE":    "x11",
		"XDG_CURRENT_DESKTOP": "XFCE",
		TagEnv:                s.ID(),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Env() %s = %q, want %q", k, got[k], v)
		}
	}
	if got["PATH"] == "" {
		t.Errorf("Env() has no PATH")
	}
	if a := s.SysProcAttr(); !a.Setpgid {
		t.Errorf("SysProcAttr().Setpgid = false, want true")
	}
}

func TestBareServer(t *testing.T) {
	s := startDesktop(t, Config{Session: SessionNone})
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := answersX(ctx, s.cfg.Display); err != nil {
		t.Fatalf("X server on %s does not answer: %v", s.DisplayName(), err)
	}
	if got := s.XGeneration(); got != 1 {
		t.Errorf("XGeneration() = %d, want 1", got)
	}
	st := s.Status()
	if len(st) != 1 || st[0].Name != partXvfb || !st[0].Running || st[0].PID == 0 || st[0].Restarts != 0 {
		t.Errorf("Status() = %+v, want one running xvfb without restarts", st)
	}
	if !slices.Contains(taggedPIDs(s.ID()), st[0].PID) {
		t.Errorf("Xvfb (pid %d) does not carry the desktop tag", st[0].PID)
	}
	// A program started the way the agent starts apps carries the tag and
	// is gone after Close.
	cmd := command("sleep", s.Env(), "/", "600")
	cmd.SysProcAttr = s.SysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	closeDesktop(t, s)
	select {
	case <-done:
	case <-time.After(deadline):
		t.Errorf("a program launched with Env() survived Close")
	}
	if err := answersX(ctx, s.cfg.Display); err == nil {
		t.Errorf("X server on %s still answers after Close", s.DisplayName())
	}
}

func TestXvfbRestart(t *testing.T) {
	s := startDesktop(t, Config{Session: SessionNone})
	gen := s.XGeneration()
	changed := s.XChanged()
	old := s.Status()[0].PID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(deadline):
		t.Fatalf("X server not back within %s; status %+v", deadline, s.Status())
	}
	if got := s.XGeneration(); got != gen+1 {
		t.Errorf("XGeneration() = %d after a restart, want %d", got, gen+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := answersX(ctx, s.cfg.Display); err != nil {
		t.Fatalf("restarted X server does not answer: %v", err)
	}
	waitFor(t, "status to show the new server", func() bool {
		st := s.Status()
		return st[0].Running && st[0].PID != old
	})
	st := s.Status()[0]
	if st.Restarts != 1 || !strings.Contains(st.Error, "signal: killed") {
		t.Errorf("Status() xvfb = %+v, want 1 restart and an error naming the kill", st)
	}
}

func TestDisplayInUse(t *testing.T) {
	first := startDesktop(t, Config{Session: SessionNone})
	s, err := New(Config{Display: first.cfg.Display, Session: SessionNone, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	err = s.Start(ctx)
	if !errors.Is(err, desktop.ErrConflict) {
		t.Errorf("Start on a display in use = %v, want an error of class ErrConflict", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close after a failed Start: %v", err)
	}
	if err := answersX(ctx, first.cfg.Display); err != nil {
		t.Errorf("the first server stopped answering: %v", err)
	}
}

func TestStaleLockRemoved(t *testing.T) {
	// A lock naming a process that is gone, as a killed server leaves it.
	dead := exec0(t)
	var s *Supervisor
	for n := 50 + os.Getpid()%400; ; n++ {
		if displayInUse(n) {
			continue
		}
		if err := os.WriteFile(lockPath(n), fmt.Appendf(nil, "%10d\n", dead), 0o444); err != nil {
			t.Fatal(err)
		}
		var err error
		s, err = New(Config{Display: n, Session: SessionNone, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		err = s.Start(ctx)
		cancel()
		if errors.Is(err, desktop.ErrConflict) {
			os.Remove(lockPath(n))
			continue
		}
		if err != nil {
			os.Remove(lockPath(n))
			t.Fatalf("Start over a stale lock: %v", err)
		}
		break
	}
	t.Cleanup(func() { closeDesktop(t, s) })
	pid, alive := lockOwner(s.cfg.Display)
	if !alive || pid != s.Status()[0].PID {
		t.Errorf("lock names pid %d (alive %v), want the new server %d", pid, alive, s.Status()[0].PID)
	}
}

// exec0 returns the pid of a process that has exited and been waited for.
func exec0(t *testing.T) int {
	cmd := command("true", nil, "/")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestStartFailsHalfWay(t *testing.T) {
	needTools(t, "Xvfb", "dbus-daemon", "xfce4-session")
	// Cancelled once the X server answers: Start fails at the bus or the
	// session, with Xvfb already running.
	for n := 50 + (os.Getpid()*7)%400; ; n++ {
		if displayInUse(n) {
			continue
		}
		s, err := New(Config{Display: n, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		xup := s.XChanged()
		go func() {
			select {
			case <-xup:
			case <-time.After(deadline):
			}
			cancel()
		}()
		err = s.Start(ctx)
		cancel()
		if errors.Is(err, desktop.ErrConflict) {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Start with a cancelled context = %v, want context.Canceled", err)
		}
		if pids := taggedPIDs(s.ID()); len(pids) != 0 {
			t.Errorf("after a failed Start, processes %v carry the tag", pids)
		}
		if _, err := os.Stat(lockPath(n)); err == nil {
			t.Errorf("after a failed Start, lock %s remains", lockPath(n))
		}
		if err := answersX(context.Background(), n); err == nil {
			t.Errorf("after a failed Start, an X server answers on :%d", n)
		}
		if z := zombieChildren(); len(z) != 0 {
			t.Errorf("after a failed Start, zombie children %v remain", z)
		}
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close after a failed Start: %v", err)
		}
		return
	}
}

func TestXFCESession(t *testing.T) {
	needTools(t, "Xvfb", "dbus-daemon", "xfce4-session")
	home := tempHome(t, os.Getuid(), os.Getgid())
	s := startDesktop(t, Config{User: selfUser(home)})
	xc := xconn(t, s.cfg.Display)
	a := &atoms{xc: xc}
	waitFor(t, "the xfce4-panel window and a window manager", func() bool { return panelUp(xc, a) })

	// The compositor is off: what apps draw is on the screen at once.
	cm, err := xproto.InternAtom(xc, false, uint16(len("_NET_WM_CM_S0")), "_NET_WM_CM_S0").Reply()
	if err != nil {
		t.Fatal(err)
	}
	if owner, err := xproto.GetSelectionOwner(xc, cm.Atom).Reply(); err != nil || owner.Owner != 0 {
		t.Errorf("a compositing manager owns _NET_WM_CM_S0 (%v, %v); xfwm4 compositing should be off", owner, err)
	}

	var names []string
	for _, p := range s.Status() {
		names = append(names, p.Name)
		if !p.Running {
			t.Errorf("part %s not running: %+v", p.Name, p)
		}
	}
	if diff := cmp.Diff([]string{partXvfb, partBus, partSession}, names); diff != "" {
		t.Errorf("Status() parts mismatch (-want +got):\n%s", diff)
	}
	tagged := taggedPIDs(s.ID())
	var comms []string
	for _, pid := range tagged {
		comms = append(comms, procName(pid))
	}
	for _, want := range []string{"Xvfb", "dbus-daemon", "xfce4-session", "xfwm4", "xfce4-panel"} {
		if !slices.Contains(comms, want) {
			t.Errorf("no tagged %s among %v", want, comms)
		}
	}
	for _, unwanted := range []string{"ssh-agent", "gpg-agent"} {
		if slices.Contains(comms, unwanted) {
			t.Errorf("session started %s: %v", unwanted, comms)
		}
	}
	t.Logf("desktop processes: %v", comms)

	// The server dies: it comes back, and so does the session on it.
	changed := s.XChanged()
	if err := syscall.Kill(partPID(s, partXvfb), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(deadline):
		t.Fatalf("X server not back within %s; status %+v", deadline, s.Status())
	}
	xc2 := xconn(t, s.cfg.Display)
	a2 := &atoms{xc: xc2}
	waitFor(t, "the panel on the restarted server", func() bool { return panelUp(xc2, a2) })
	if st := partStatus(s, partSession); !st.Running || st.Restarts != 1 {
		t.Errorf("Status() session = %+v after the server restarted, want running with 1 restart", st)
	}
	if st := partStatus(s, partBus); !st.Running || st.Restarts != 0 {
		t.Errorf("Status() dbus = %+v after the server restarted, want running without restarts", st)
	}

	// The session leader dies: the rest of its group goes with it and a new
	// session brings the panel back. Then the bus dies: it comes back, and
	// the session, which needs it, starts again on the new bus.
	for i, c := range []struct {
		kill     string
		restarts map[string]int // part -> restarts afterwards
	}{
		{partSession, map[string]int{partXvfb: 1, partBus: 0, partSession: 2}},
		{partBus, map[string]int{partXvfb: 1, partBus: 1, partSession: 3}},
	} {
		// What goes: the killed part's process group, and the session's
		// when the bus it needs goes.
		old := partPID(s, c.kill)
		groups := []int{old}
		if c.kill == partBus {
			groups = append(groups, partPID(s, partSession))
		}
		doomed := map[int]string{}
		for _, pid := range taggedPIDs(s.ID()) {
			if slices.Contains(groups, pgid(pid)) {
				doomed[pid] = procName(pid)
			}
		}
		if len(doomed) < 2 {
			t.Fatalf("step %d: found %v in process groups %v, want the part and what it started", i, doomed, groups)
		}
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("step %d: %s restarted", i, c.kill), func() bool {
			for name, n := range c.restarts {
				if st := partStatus(s, name); !st.Running || st.Restarts != n {
					return false
				}
			}
			return true
		})
		waitFor(t, fmt.Sprintf("step %d: the processes of the killed %s gone", i, c.kill), func() bool {
			for _, pid := range taggedPIDs(s.ID()) {
				if _, ok := doomed[pid]; ok {
					return false
				}
			}
			return true
		})
		waitFor(t, fmt.Sprintf("step %d: the panel of the new session", i), func() bool { return panelUp(xc2, a2) })
		if pid := partPID(s, c.kill); pid == old {
			t.Errorf("step %d: %s still has pid %d after it was killed", i, c.kill, pid)
		}
	}
}

func TestXFCESessionAsUser(t *testing.T) {
	needTools(t, "Xvfb", "dbus-daemon", "xfce4-session")
	if os.Geteuid() != 0 {
		t.Skip("running the session as another user needs root")
	}
	const nobody = 65534
	home := tempHome(t, nobody, nobody)
	s := startDesktop(t, Config{User: &User{UID: nobody, GID: nobody, Name: "nobody", Home: home}, VNCPort: freePort(t)})
	xc := xconn(t, s.cfg.Display)
	a := &atoms{xc: xc}
	waitFor(t, "the xfce4-panel window and a window manager", func() bool { return panelUp(xc, a) })
	if _, err := exec.LookPath("x11vnc"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if _, err := s.StartVNC(ctx, VNCOptions{}); err != nil {
			t.Errorf("StartVNC as nobody: %v", err)
		}
	}
	n := 0
	for _, pid := range taggedPIDs(s.ID()) {
		uid, err := procUID(pid)
		if err != nil {
			continue // gone meanwhile
		}
		want := nobody
		if procName(pid) == "Xvfb" {
			want = os.Getuid()
		}
		if uid != want {
			t.Errorf("%s (pid %d) runs as uid %d, want %d", procName(pid), pid, uid, want)
		}
		n++
	}
	if n < 4 {
		t.Errorf("found %d tagged processes, want the server, the bus and the session's", n)
	}
	if _, err := os.Stat(home + "/.config/xfce4"); err != nil {
		t.Errorf("session did not write its settings into HOME: %v", err)
	}
}
