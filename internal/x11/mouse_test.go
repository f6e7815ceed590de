package x11

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// testArea is where the mouse tests put their window.
var testArea = desktop.Rect{X: 100, Y: 50, Width: 600, Height: 400}

func key(t testing.TB, name string) desktop.Keysym {
	t.Helper()
	ks, ok := desktop.LookupKey(name)
	if !ok {
		t.Fatalf("no key %q", name)
	}
	return ks
}

func TestMouseClickLandsAtPixel(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	ctx := context.Background()
	for _, p := range []desktop.Point{{X: 100, Y: 50}, {X: 250, Y: 300}, {X: 699, Y: 449}, {X: 400, Y: 51}} {
		win.reset()
		if err := c.MoveMouse(ctx, p); err != nil {
			t.Fatalf("MoveMouse(%v): %v", p, err)
		}
		if err := c.Click(ctx, desktop.Left, 1, nil); err != nil {
			t.Fatalf("Click at %v: %v", p, err)
		}
		evs := win.waitInput(t, 2, isButton)
		press, ok := evs[0].(xproto.ButtonPressEvent)
		if !ok {
			t.Fatalf("first button event at %v is %v, want a ButtonPress", p, evs[0])
		}
		wantX, wantY := int16(p.X-testArea.X), int16(p.Y-testArea.Y)
		if press.Detail != 1 || press.EventX != wantX || press.EventY != wantY ||
			press.RootX != int16(p.X) || press.RootY != int16(p.Y) {
			t.Errorf("click at %v: got button %d at window (%d, %d) root (%d, %d), want button 1 at window (%d, %d)",
				p, press.Detail, press.EventX, press.EventY, press.RootX, press.RootY, wantX, wantY)
		}
		if rel, ok := evs[1].(xproto.ButtonReleaseEvent); !ok || rel.Detail != 1 {
			t.Errorf("click at %v: second button event is %v, want ButtonRelease of button 1", p, evs[1])
		}
		got, err := c.CursorPosition(ctx)
		if err != nil {
			t.Fatalf("CursorPosition: %v", err)
		}
		if got != p {
			t.Errorf("CursorPosition() = %v, want %v", got, p)
		}
	}
}

// buttonTrace turns button events into "+1 -1" style strings.
func buttonTrace(evs []xgb.Event) []string {
	var out []string
	for _, e := range evs {
		switch e := e.(type) {
		case xproto.ButtonPressEvent:
			out = append(out, "+"+strconv.Itoa(int(e.Detail)))
		case xproto.ButtonReleaseEvent:
			out = append(out, "-"+strconv.Itoa(int(e.Detail)))
		}
	}
	return out
}

func TestClickButtonsAndCounts(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	ctx := context.Background()
	if err := c.MoveMouse(ctx, desktop.Point{X: 300, Y: 200}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		button desktop.Button
		count  int
		want   []string
	}{
		{"left", desktop.Left, 1, []string{"+1", "-1"}},
		{"default count", desktop.Left, 0, []string{"+1", "-1"}},
		{"middle", desktop.Middle, 1, []string{"+2", "-2"}},
		{"right", desktop.Right, 1, []string{"+3", "-3"}},
		{"back", desktop.Back, 1, []string{"+8", "-8"}},
		{"forward", desktop.Forward, 1, []string{"+9", "-9"}},
		{"double", desktop.Left, 2, []string{"+1", "-1", "+1", "-1"}},
		{"triple right", desktop.Right, 3, []string{"+3", "-3", "+3", "-3", "+3", "-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			win.reset()
			if err := c.Click(ctx, tt.button, tt.count, nil); err != nil {
				t.Fatalf("Click(%s, %d): %v", tt.button, tt.count, err)
			}
			got := buttonTrace(win.waitInput(t, len(tt.want), isButton))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Click(%s, %d) gave %v, want %v", tt.button, tt.count, got, tt.want)
			}
		})
	}
}

func TestMouseButtonDownUp(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	ctx := context.Background()
	if err := c.MoveMouse(ctx, desktop.Point{X: 300, Y: 200}); err != nil {
		t.Fatal(err)
	}
	if err := c.ButtonDown(ctx, desktop.Right); err != nil {
		t.Fatalf("ButtonDown: %v", err)
	}
	if got := buttonTrace(win.waitInput(t, 1, isButton)); !slices.Equal(got, []string{"+3"}) {
		t.Fatalf("ButtonDown(right) gave %v, want [+3]", got)
	}
	if err := c.MoveMouse(ctx, desktop.Point{X: 320, Y: 210}); err != nil {
		t.Fatal(err)
	}
	if err := c.ButtonUp(ctx, desktop.Right); err != nil {
		t.Fatalf("ButtonUp: %v", err)
	}
	evs := win.waitInput(t, 2, isButton)
	if got := buttonTrace(evs); !slices.Equal(got, []string{"+3", "-3"}) {
		t.Fatalf("ButtonDown, ButtonUp gave %v, want [+3 -3]", got)
	}
	if rel := evs[1].(xproto.ButtonReleaseEvent); rel.RootX != 320 || rel.RootY != 210 {
		t.Errorf("release at (%d, %d), want (320, 210)", rel.RootX, rel.RootY)
	}
}

func TestScrollDirections(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	ctx := context.Background()
	if err := c.MoveMouse(ctx, desktop.Point{X: 300, Y: 200}); err != nil {
		t.Fatal(err)
	}
	rep := func(n int, b string) []string {
		var out []string
		for range n {
			out = append(out, "+"+b, "-"+b)
		}
		return out
	}
	tests := []struct {
		name   string
		dx, dy int
		want   []string
	}{
		{"up", 0, -3, rep(3, "4")},
		{"down", 0, 2, rep(2, "5")},
		{"left", -1, 0, rep(1, "6")},
		{"right", 4, 0, rep(4, "7")},
		{"down and right", 2, 1, append(rep(1, "5"), rep(2, "7")...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			win.reset()
			if err := c.Scroll(ctx, tt.dx, tt.dy, nil); err != nil {
				t.Fatalf("Scroll(%d, %d): %v", tt.dx, tt.dy, err)
			}
			got := buttonTrace(win.waitInput(t, len(tt.want), isButton))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Scroll(%d, %d) gave %v, want %v", tt.dx, tt.dy, got, tt.want)
			}
		})
	}
}

func TestDragThroughPath(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	ctx := context.Background()
	path := []desktop.Point{{X: 150, Y: 100}, {X: 400, Y: 160}, {X: 420, Y: 400}, {X: 421, Y: 401}}
	if err := c.Drag(ctx, path, desktop.Left, nil); err != nil {
		t.Fatalf("Drag: %v", err)
	}
	all := input(win.wait(t, "the button release of the drag", func(evs []xgb.Event) bool {
		for _, e := range evs {
			if _, ok := e.(xproto.ButtonReleaseEvent); ok {
				return true
			}
		}
		return false
	}))
	var presses, releases int
	var last desktop.Point
	var moves int
	for i, e := range all {
		switch e := e.(type) {
		case xproto.ButtonPressEvent:
			presses++
			if p := (desktop.Point{X: int(e.RootX), Y: int(e.RootY)}); p != path[0] || e.Detail != 1 {
				t.Errorf("press of button %d at %v, want button 1 at %v", e.Detail, p, path[0])
			}
			last = path[0]
		case xproto.MotionNotifyEvent:
			if presses == 0 {
				continue // the move to the start point
			}
			moves++
			p := desktop.Point{X: int(e.RootX), Y: int(e.RootY)}
			if d := max(magnitude(p.X-last.X), magnitude(p.Y-last.Y)); d > dragStep {
				t.Errorf("event %d: motion jumps %d px from %v to %v, want at most %d", i, d, last, p, dragStep)
			}
			if e.State&xproto.KeyButMaskButton1 == 0 {
				t.Errorf("event %d: motion without button 1 held (state %#x)", i, e.State)
			}
			last = p
		case xproto.ButtonReleaseEvent:
			releases++
			if p := (desktop.Point{X: int(e.RootX), Y: int(e.RootY)}); p != path[len(path)-1] {
				t.Errorf("release at %v, want %v", p, path[len(path)-1])
			}
		}
	}
	if presses != 1 || releases != 1 {
		t.Errorf("got %d presses and %d releases, want 1 and 1", presses, releases)
	}
	// 250 px, then 240 px, then 1 px: at least 16 + 15 + 1 motions.
	if moves < 32 {
		t.Errorf("got %d motion events during the drag, want at least 32", moves)
	}
}

func TestClickModifiersHeld(t *testing.T) {
	s, c := testDisplay(t)
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea})
	ctx := context.Background()
	if err := c.MoveMouse(ctx, desktop.Point{X: 300, Y: 200}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mods []string
		want uint16
	}{
		{"none", nil, 0},
		{"ctrl", []string{"ctrl"}, xproto.ModMaskControl},
		{"ctrl shift", []string{"ctrl", "shift"}, xproto.ModMaskControl | xproto.ModMaskShift},
		{"alt", []string{"alt"}, xproto.ModMask1},
	}
	const mask = xproto.ModMaskControl | xproto.ModMaskShift | xproto.ModMask1 | xproto.ModMask4
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []desktop.Keysym
			for _, m := range tt.mods {
				mods = append(mods, key(t, m))
			}
			for _, action := range []string{"click", "scroll"} {
				win.reset()
				var err error
				if action == "click" {
					err = c.Click(ctx, desktop.Left, 1, mods)
				} else {
					err = c.Scroll(ctx, 0, 1, mods)
				}
				if err != nil {
					t.Fatalf("%s with %v: %v", action, tt.mods, err)
				}
				press := win.waitInput(t, 2, isButton)[0].(xproto.ButtonPressEvent)
				if got := press.State & mask; got != tt.want {
					t.Errorf("%s with %v: button press state %#x, want %#x", action, tt.mods, got, tt.want)
				}
			}
		})
	}
	// Nothing stays held: a plain click afterwards has no modifier.
	win.reset()
	if err := c.Click(ctx, desktop.Left, 1, nil); err != nil {
		t.Fatal(err)
	}
	if press := win.waitInput(t, 2, isButton)[0].(xproto.ButtonPressEvent); press.State&mask != 0 {
		t.Errorf("plain click after modifier clicks has state %#x, want no modifier", press.State)
	}
}
