package x11

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

func TestWindowsListsTopLevelsWithoutWM(t *testing.T) {
	s, c := testDisplay(t)
	ctx := context.Background()
	specs := []testWindowOptions{
		{Rect: desktop.Rect{X: 10, Y: 20, Width: 300, Height: 200}, Managed: true,
			Title: "plain", Instance: "one", Class: "One", PID: 4242},
		{Rect: desktop.Rect{X: 400, Y: 30, Width: 200, Height: 150}, Managed: true,
			Title: "Grüße ☃ 東京", Instance: "two", Class: "Two"},
		{Rect: desktop.Rect{X: 50, Y: 400, Width: 640, Height: 300}, Managed: true,
			Title: "third", Instance: "three", Class: "Three", PID: os.Getpid()},
	}
	var want []desktop.Window
	for _, o := range specs {
		w := newTestWindow(t, s.Display, o)
		want = append(want, desktop.Window{ID: uint32(w.win), Title: o.Title, Class: o.Class,
			Instance: o.Instance, PID: o.PID, Rect: o.Rect})
	}
	// A popup (override-redirect) is not an application window.
	newTestWindow(t, s.Display, testWindowOptions{Rect: desktop.Rect{X: 5, Y: 5, Width: 20, Height: 20}})

	got, err := c.Windows(ctx)
	if err != nil {
		t.Fatalf("Windows: %v", err)
	}
	byID := cmpopts.SortSlices(func(a, b desktop.Window) bool { return a.ID < b.ID })
	if diff := cmp.Diff(want, got, byID); diff != "" {
		t.Errorf("Windows() mismatch (-want +got):\n%s", diff)
	}

	for _, w := range []desktop.Window{want[1], want[0], want[2]} {
		if err := c.FocusWindow(ctx, w.ID); err != nil {
			t.Fatalf("FocusWindow(%#x): %v", w.ID, err)
		}
		active, err := c.ActiveWindow(ctx)
		if err != nil {
			t.Fatalf("ActiveWindow: %v", err)
		}
		if active != w.ID {
			t.Errorf("after FocusWindow(%#x), ActiveWindow() = %#x", w.ID, active)
		}
		list, err := c.Windows(ctx)
		if err != nil {
			t.Fatalf("Windows: %v", err)
		}
		for _, l := range list {
			if l.Focused != (l.ID == w.ID) {
				t.Errorf("after FocusWindow(%#x), window %#x has Focused=%v", w.ID, l.ID, l.Focused)
			}
		}
	}
}

func TestFocusWindowRejectsBadIDs(t *testing.T) {
	_, c := testDisplay(t)
	ctx := context.Background()
	tests := []struct {
		id   uint32
		want error
	}{
		{0, desktop.ErrInvalid},
		{0x1fffffe, desktop.ErrNotFound},
	}
	for _, tt := range tests {
		if err := c.FocusWindow(ctx, tt.id); !errors.Is(err, tt.want) {
			t.Errorf("FocusWindow(%#x) = %v, want %v", tt.id, err, tt.want)
		}
	}
}

func TestWindowsSkipsVanishingWindows(t *testing.T) {
	s, c := testDisplay(t)
	ctx := context.Background()
	newTestWindow(t, s.Display, testWindowOptions{Rect: desktop.Rect{X: 0, Y: 0, Width: 50, Height: 50},
		Managed: true, Title: "stays", Instance: "stays", Class: "Stays"})

	// Another client creates and destroys named windows as fast as it can.
	xc, err := rawConn(s.Display)
	if err != nil {
		t.Fatal(err)
	}
	defer xc.Close()
	screen := xproto.Setup(xc).DefaultScreen(xc)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w, err := xproto.NewWindowId(xc)
			if err != nil {
				return
			}
			xproto.CreateWindow(xc, screen.RootDepth, w, screen.Root, 0, 0, 10, 10, 0,
				xproto.WindowClassInputOutput, screen.RootVisual, 0, nil)
			name := "churn"
			xproto.ChangeProperty(xc, xproto.PropModeReplace, w, xproto.AtomWmClass, xproto.AtomString, 8,
				uint32(len(name)), []byte(name))
			xproto.MapWindow(xc, w)
			if _, err := xproto.GetInputFocus(xc).Reply(); err != nil {
				return
			}
			xproto.DestroyWindow(xc, w)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for i := range 200 {
		wins, err := c.Windows(ctx)
		if err != nil {
			t.Fatalf("Windows() while windows come and go, call %d: %v", i, err)
		}
		found := false
		for _, w := range wins {
			found = found || w.Title == "stays"
		}
		if !found {
			t.Fatalf("call %d: the steady window is missing from %+v", i, wins)
		}
	}
}

func TestWindowsTerminalWithAndWithoutWM(t *testing.T) {
	s, c := testDisplay(t)
	ctx := context.Background()
	xterm := func(title string) *terminal {
		return startTerminal(t, s, c, title, "xterm", "-u8", "-T", "TITLE", "-geometry", "80x24+40+60",
			"-e", "sh", "-c", "stty -echo; exec cat > FILE")
	}
	a := xterm("term-a")
	check := func(stage string, want map[uint32]*terminal) []desktop.Window {
		t.Helper()
		wins, err := c.Windows(ctx)
		if err != nil {
			t.Fatalf("%s: Windows: %v", stage, err)
		}
		seen := 0
		for _, w := range wins {
			term, ok := want[w.ID]
			if !ok {
				continue
			}
			seen++
			if w.Class != "XTerm" || w.Instance != "xterm" || w.PID != term.pid || w.Width < 100 || w.Height < 100 {
				t.Errorf("%s: terminal listed as %+v, want class XTerm, instance xterm, pid %d and a real size",
					stage, w, term.pid)
			}
		}
		if seen != len(want) {
			t.Errorf("%s: Windows() lists %d of the %d terminals: %+v", stage, seen, len(want), wins)
		}
		return wins
	}
	check("without a window manager", map[uint32]*terminal{a.id: a})
	a.typeText(t, c, "typed without a window manager", "typed without a window manager")

	startWM(t, s, c)
	b := xterm("term-b")
	wins := check("under xfwm4", map[uint32]*terminal{a.id: a, b.id: b})
	for _, w := range wins {
		if w.ID == a.id && (w.X < 0 || w.Y < 0 || w.X+w.Width > 1024 || w.Y+w.Height > 768) {
			t.Errorf("under xfwm4: terminal at %+v, outside the screen", w.Rect)
		}
	}
	for _, term := range []*terminal{a, b, a} {
		if err := c.FocusWindow(ctx, term.id); err != nil {
			t.Fatalf("FocusWindow: %v", err)
		}
		poll(t, "the window manager to activate the terminal", func() bool {
			id, err := c.ActiveWindow(ctx)
			if err != nil {
				t.Fatalf("ActiveWindow: %v", err)
			}
			return id == term.id
		})
		for _, w := range check("after focus", map[uint32]*terminal{a.id: a, b.id: b}) {
			if w.Focused != (w.ID == term.id) {
				t.Errorf("after FocusWindow(%#x): window %#x has Focused=%v", term.id, w.ID, w.Focused)
			}
		}
	}
	b.typeText(t, c, "typed under xfwm4 ☃", "typed under xfwm4 ☃")
}

// startWM runs xfwm4 on s and waits until it manages the screen.
func startWM(t *testing.T, s *xvfbtest.Server, c *Conn) {
	t.Helper()
	// xfwm4 reads its settings over D-Bus: give it a bus that ends with it.
	cmd := s.Command(t, "dbus-run-session", "--", "xfwm4", "--compositor=off")
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start xfwm4: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		killGroup(cmd.Process.Pid)
		<-exited
	})
	poll(t, "xfwm4 to manage the screen", func() bool {
		st, err := c.readWM(context.Background())
		if err != nil {
			t.Fatalf("read window manager state: %v", err)
		}
		return st.wm && st.hasList
	})
}
