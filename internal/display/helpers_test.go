package display

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// deadline is how long tests wait for anything: generous, because other
// desktops and builds share the two cores.
const deadline = 60 * time.Second

func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s is not installed: %v", n, err)
		}
	}
}

// testLogger sends warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// displayInUse reports whether display n looks taken: a lock file or a
// socket that answers.
func displayInUse(n int) bool {
	if _, err := os.Stat(lockPath(n)); err == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if nc, err := dialX(ctx, n); err == nil {
		nc.Close()
		return true
	}
	return false
}

// startDesktop starts a desktop with cfg on a free display number and closes
// it at the end of the test, checking that Close leaves nothing behind.
func startDesktop(t testing.TB, cfg Config) *Supervisor {
	t.Helper()
	s, _ := startFree(t, cfg)
	t.Cleanup(func() { closeDesktop(t, s) })
	return s
}

// startFree starts a desktop with cfg on a free display number and returns
// it with the time Start took. Other desktops start on this machine at the
// same time, so a number that turns out taken is skipped.
func startFree(t testing.TB, cfg Config) (*Supervisor, time.Duration) {
	t.Helper()
	needTools(t, "Xvfb")
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	n := 50 + rand.IntN(400)
	for range 40 {
		n++
		if displayInUse(n) {
			continue
		}
		cfg.Display = n
		s, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
		t0 := time.Now()
		err = s.Start(ctx)
		took := time.Since(t0)
		cancel()
		if errors.Is(err, desktop.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatalf("Start on :%d: %v", n, err)
		}
		return s, took
	}
	t.Fatalf("no free display found")
	return nil, 0
}

// closeDesktop closes s and checks that nothing it started remains.
func closeDesktop(t testing.TB, s *Supervisor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if pids := taggedPIDs(s.ID()); len(pids) != 0 {
		t.Errorf("after Close, processes %v still carry %s=%s", pids, TagEnv, s.ID())
	}
	if z := zombieChildren(); len(z) != 0 {
		t.Errorf("after Close, zombie children %v remain", z)
	}
	if _, err := os.Stat(lockPath(s.cfg.Display)); err == nil {
		if pid, alive := lockOwner(s.cfg.Display); !alive {
			t.Errorf("after Close, stale lock %s (pid %d) remains", lockPath(s.cfg.Display), pid)
		}
	}
	s.mu.Lock()
	dir := s.runtimeDir
	s.mu.Unlock()
	if dir != "" {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("after Close, runtime dir %s remains", dir)
		}
	}
}

// zombieChildren lists zombie processes whose parent is the test process.
func zombieChildren() []int {
	self := os.Getpid()
	names, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range names {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		end := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[end+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(self) {
			out = append(out, pid)
		}
	}
	return out
}

// ppid returns the parent of pid, or 0.
func ppid(pid int) int { return statField(pid, 1) }

// pgid returns the process group of pid, or 0.
func pgid(pid int) int { return statField(pid, 2) }

// statField returns field i (0: the state) after the command name in
// /proc/<pid>/stat as a number, or 0.
func statField(pid, i int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) <= i {
		return 0
	}
	n, _ := strconv.Atoi(f[i])
	return n
}

// procUID returns the real uid of pid.
func procUID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[0])
			}
		}
	}
	return 0, fmt.Errorf("no Uid line for pid %d", pid)
}

// procName returns the command name of pid.
func procName(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// xconn dials display n for the test and closes the connection at its end.
func xconn(t testing.TB, n int) *xgb.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := dialX(ctx, n)
	if err != nil {
		t.Fatalf("dial :%d: %v", n, err)
	}
	xc, err := xgb.NewConnNet(nc)
	if err != nil {
		nc.Close()
		t.Fatalf("connect :%d: %v", n, err)
	}
	t.Cleanup(xc.Close)
	return xc
}

// waitFor polls cond until it holds, failing the test after deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// atoms caches interned atoms of one connection.
type atoms struct {
	xc *xgb.Conn
	mu sync.Mutex
	m  map[string]xproto.Atom
}

func (a *atoms) get(name string) xproto.Atom {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.m[name]; ok {
		return at
	}
	r, err := xproto.InternAtom(a.xc, false, uint16(len(name)), name).Reply()
	if err != nil {
		return 0
	}
	if a.m == nil {
		a.m = map[string]xproto.Atom{}
	}
	a.m[name] = r.Atom
	return r.Atom
}

// viewableWithClass reports whether a viewable window whose WM_CLASS holds
// class is in the tree under w, looking depth levels down (managed windows
// sit inside a frame of the window manager).
func viewableWithClass(xc *xgb.Conn, w xproto.Window, class string, depth int) bool {
	tree, err := xproto.QueryTree(xc, w).Reply()
	if err != nil {
		return false
	}
	for _, c := range tree.Children {
		attr, err := xproto.GetWindowAttributes(xc, c).Reply()
		if err != nil || attr.MapState != xproto.MapStateViewable {
			continue
		}
		prop, err := xproto.GetProperty(xc, false, c, xproto.AtomWmClass, xproto.AtomString, 0, 64).Reply()
		if err == nil && bytes.Contains(prop.Value, []byte(class)) {
			return true
		}
		if depth > 1 && viewableWithClass(xc, c, class, depth-1) {
			return true
		}
	}
	return false
}

// hasWM reports whether the root names a window manager through
// _NET_SUPPORTING_WM_CHECK.
func hasWM(xc *xgb.Conn, a *atoms) bool {
	root := xproto.Setup(xc).DefaultScreen(xc).Root
	prop, err := xproto.GetProperty(xc, false, root, a.get("_NET_SUPPORTING_WM_CHECK"), xproto.AtomWindow, 0, 1).Reply()
	return err == nil && prop.ValueLen == 1
}

// panelUp reports whether the XFCE panel is mapped and a window manager runs.
func panelUp(xc *xgb.Conn, a *atoms) bool {
	root := xproto.Setup(xc).DefaultScreen(xc).Root
	return hasWM(xc, a) && viewableWithClass(xc, root, "xfce4-panel", 3)
}

// tempHome makes a home directory owned by uid:gid that the test removes.
// It is not under t.TempDir, whose parents only root may enter.
func tempHome(t testing.TB, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cubicle-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// selfUser describes this process as a desktop user with home as HOME.
func selfUser(home string) *User {
	name := os.Getenv("USER")
	if name == "" {
		name = "user" + strconv.Itoa(os.Getuid())
	}
	return &User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Name: name, Home: home}
}
