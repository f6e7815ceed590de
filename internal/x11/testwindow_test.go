package x11

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// waitLong bounds every wait of these tests: generous, since other builds
// and X servers share the machine.
const waitLong = 20 * time.Second

// testDisplay starts a fresh Xvfb and connects to it.
func testDisplay(t *testing.T) (*xvfbtest.Server, *Conn) {
	t.Helper()
	s := xvfbtest.Start(t, xvfbtest.Options{Width: 1024, Height: 768})
	return s, dialTest(t, s.Display)
}

// dialTest connects to display and closes the connection in t.Cleanup.
func dialTest(t testing.TB, display string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := Dial(ctx, Config{Display: display})
	if err != nil {
		t.Fatalf("Dial(%s): %v", display, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn opens a plain xgb connection, as any other X client would.
func rawConn(display string) (*xgb.Conn, error) {
	n, err := DisplayNumber(display)
	if err != nil {
		return nil, err
	}
	nc, err := dialSocket(context.Background(), n)
	if err != nil {
		return nil, err
	}
	return xgb.NewConnNet(nc)
}

// testWindowOptions shape a test window.
type testWindowOptions struct {
	Rect desktop.Rect
	// Managed leaves the window to a window manager (no override-redirect)
	// and names it: Title, Instance, Class and PID become its properties.
	Managed         bool
	Title           string
	Instance, Class string
	PID             int
}

// testWindow is a window of a second, independent X client that records
// the pointer and key events it receives.
type testWindow struct {
	xc  *xgb.Conn
	win xproto.Window

	mu     sync.Mutex
	events []xgb.Event
	notify chan struct{} // poked on every new event
	done   chan struct{}
}

// newTestWindow creates and maps the window and waits until it is mapped.
func newTestWindow(t testing.TB, display string, o testWindowOptions) *testWindow {
	t.Helper()
	xc, err := rawConn(display)
	if err != nil {
		t.Fatalf("test client: connect: %v", err)
	}
	w := &testWindow{xc: xc, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	t.Cleanup(func() {
		xc.Close()
		<-w.done
	})

	screen := xproto.Setup(xc).DefaultScreen(xc)
	win, err := xproto.NewWindowId(xc)
	if err != nil {
		t.Fatalf("test client: window id: %v", err)
	}
	w.win = win
	mask := uint32(xproto.EventMaskButtonPress | xproto.EventMaskButtonRelease | xproto.EventMaskPointerMotion |
		xproto.EventMaskKeyPress | xproto.EventMaskKeyRelease | xproto.EventMaskStructureNotify |
		xproto.EventMaskFocusChange)
	r := o.Rect
	err = xproto.CreateWindowChecked(xc, screen.RootDepth, win, screen.Root,
		int16(r.X), int16(r.Y), uint16(r.Width), uint16(r.Height), 0,
		xproto.WindowClassInputOutput, screen.RootVisual,
		xproto.CwBackPixel|xproto.CwOverrideRedirect|xproto.CwEventMask,
		[]uint32{screen.WhitePixel, boolWord(!o.Managed), mask}).Check()
	if err != nil {
		t.Fatalf("test client: create window: %v", err)
	}
	if o.Managed {
		w.setText(t, "WM_NAME", "STRING", o.Title)
		w.setText(t, "_NET_WM_NAME", "UTF8_STRING", o.Title)
		w.setText(t, "WM_CLASS", "STRING", o.Instance+"\x00"+o.Class+"\x00")
		if o.PID != 0 {
			pid := make([]byte, 4)
			xgb.Put32(pid, uint32(o.PID))
			xproto.ChangeProperty(xc, xproto.PropModeReplace, win, w.atom(t, "_NET_WM_PID"), xproto.AtomCardinal, 32, 1, pid)
		}
	}
	if err := xproto.MapWindowChecked(xc, win).Check(); err != nil {
		t.Fatalf("test client: map window: %v", err)
	}
	w.wait(t, "MapNotify", func(evs []xgb.Event) bool {
		for _, e := range evs {
			if _, ok := e.(xproto.MapNotifyEvent); ok {
				return true
			}
		}
		return false
	})
	w.reset()
	return w
}

func boolWord(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func (w *testWindow) atom(t testing.TB, name string) xproto.Atom {
	t.Helper()
	r, err := xproto.InternAtom(w.xc, false, uint16(len(name)), name).Reply()
	if err != nil {
		t.Fatalf("test client: intern %s: %v", name, err)
	}
	return r.Atom
}

func (w *testWindow) setText(t testing.TB, prop, typ, value string) {
	t.Helper()
	err := xproto.ChangePropertyChecked(w.xc, xproto.PropModeReplace, w.win, w.atom(t, prop), w.atom(t, typ),
		8, uint32(len(value)), []byte(value)).Check()
	if err != nil {
		t.Fatalf("test client: set %s: %v", prop, err)
	}
}

func (w *testWindow) loop() {
	defer close(w.done)
	for {
		ev, err := w.xc.WaitForEvent()
		if ev == nil && err == nil {
			return
		}
		if ev == nil {
			continue
		}
		w.mu.Lock()
		w.events = append(w.events, ev)
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
	}
}

// reset forgets the events received so far.
func (w *testWindow) reset() {
	w.mu.Lock()
	w.events = nil
	w.mu.Unlock()
}

// wait waits until done holds for the events received since the last
// reset and returns them; it fails the test after waitLong.
func (w *testWindow) wait(t testing.TB, what string, done func([]xgb.Event) bool) []xgb.Event {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		evs := append([]xgb.Event(nil), w.events...)
		w.mu.Unlock()
		if done(evs) {
			return evs
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			t.Fatalf("waited %v for %s; got %d events:\n%s", waitLong, what, len(evs), describeEvents(evs))
		}
	}
}

// input keeps the pointer and key events of evs.
func input(evs []xgb.Event) []xgb.Event {
	var out []xgb.Event
	for _, e := range evs {
		switch e.(type) {
		case xproto.ButtonPressEvent, xproto.ButtonReleaseEvent, xproto.MotionNotifyEvent,
			xproto.KeyPressEvent, xproto.KeyReleaseEvent:
			out = append(out, e)
		}
	}
	return out
}

// waitInput waits for n pointer or key events matching keep.
func (w *testWindow) waitInput(t testing.TB, n int, keep func(xgb.Event) bool) []xgb.Event {
	t.Helper()
	var got []xgb.Event
	w.wait(t, fmt.Sprintf("%d input events", n), func(evs []xgb.Event) bool {
		got = got[:0]
		for _, e := range input(evs) {
			if keep == nil || keep(e) {
				got = append(got, e)
			}
		}
		return len(got) >= n
	})
	return got
}

func isButton(e xgb.Event) bool {
	switch e.(type) {
	case xproto.ButtonPressEvent, xproto.ButtonReleaseEvent:
		return true
	}
	return false
}

func isKey(e xgb.Event) bool {
	switch e.(type) {
	case xproto.KeyPressEvent, xproto.KeyReleaseEvent:
		return true
	}
	return false
}

// describeEvents prints events one a line for failure messages.
func describeEvents(evs []xgb.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}

// focus gives the window the keyboard focus and waits for FocusIn.
func (w *testWindow) focus(t testing.TB) {
	t.Helper()
	w.reset()
	if err := xproto.SetInputFocusChecked(w.xc, xproto.InputFocusPointerRoot, w.win, xproto.TimeCurrentTime).Check(); err != nil {
		t.Fatalf("test client: focus: %v", err)
	}
	w.wait(t, "FocusIn", func(evs []xgb.Event) bool {
		for _, e := range evs {
			if _, ok := e.(xproto.FocusInEvent); ok {
				return true
			}
		}
		return false
	})
	w.reset()
}

// keysyms reads the current keyboard mapping: keycode -> level 0 and 1.
func (w *testWindow) keysyms(t testing.TB) map[xproto.Keycode][2]desktop.Keysym {
	t.Helper()
	setup := xproto.Setup(w.xc)
	r, err := xproto.GetKeyboardMapping(w.xc, setup.MinKeycode, byte(setup.MaxKeycode-setup.MinKeycode+1)).Reply()
	if err != nil {
		t.Fatalf("test client: keyboard mapping: %v", err)
	}
	per := int(r.KeysymsPerKeycode)
	out := map[xproto.Keycode][2]desktop.Keysym{}
	for i := 0; (i+1)*per <= len(r.Keysyms); i++ {
		row := r.Keysyms[i*per : (i+1)*per]
		var ks [2]desktop.Keysym
		for j := 0; j < 2 && j < per; j++ {
			ks[j] = desktop.Keysym(row[j])
		}
		out[setup.MinKeycode+xproto.Keycode(i)] = ks
	}
	return out
}

// terminal is a real terminal emulator on the test display whose shell
// copies what is typed into a file, without echo.
type terminal struct {
	id   uint32
	pid  int
	file string
}

// startTerminal runs argv (with FILE in it replaced by the output file)
// with a UTF-8 locale and waits until its window is listed and its shell
// has opened the file.
func startTerminal(t *testing.T, s *xvfbtest.Server, c *Conn, title string, argv ...string) *terminal {
	t.Helper()
	file := filepath.Join(t.TempDir(), "typed.txt")
	args := make([]string, len(argv)-1)
	for i, a := range argv[1:] {
		args[i] = strings.ReplaceAll(strings.ReplaceAll(a, "FILE", file), "TITLE", title)
	}
	cmd := s.Command(t, argv[0], args...)
	cmd.Env = append(cmd.Env, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", argv[0], err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		killGroup(cmd.Process.Pid)
		<-exited
	})

	term := &terminal{file: file, pid: cmd.Process.Pid}
	ctx := context.Background()
	poll(t, "the terminal window "+title, func() bool {
		wins, err := c.Windows(ctx)
		if err != nil {
			t.Fatalf("Windows: %v", err)
		}
		for _, w := range wins {
			if w.Title == title {
				term.id = w.ID
				return true
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before its window appeared", argv[0])
		default:
		}
		return false
	})
	poll(t, "the terminal's shell to open its file", func() bool {
		_, err := os.Stat(file)
		return err == nil
	})
	return term
}

// typeText focuses the terminal, types text and a final newline, and
// waits until the file holds exactly want and a newline.
func (term *terminal) typeText(t *testing.T, c *Conn, text, want string) {
	t.Helper()
	ctx := context.Background()
	if err := c.FocusWindow(ctx, term.id); err != nil {
		t.Fatalf("FocusWindow: %v", err)
	}
	if err := c.TypeText(ctx, text+"\n"); err != nil {
		t.Fatalf("TypeText: %v", err)
	}
	want += "\n"
	var got string
	deadline := time.Now().Add(waitLong)
	for {
		b, _ := os.ReadFile(term.file)
		got = string(b)
		if !strings.HasPrefix(want, got) || got == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("the terminal received\n%q\nwant\n%q", got, want)
	}
}

// poll checks cond every 20 ms until it holds, failing after waitLong.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLong, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killGroup kills the process group of pid.
func killGroup(pid int) {
	syscall.Kill(-pid, syscall.SIGKILL)
}
