package x11

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestInputScreenSizeFollowsRootResize(t *testing.T) {
	s, c := testDisplay(t)
	ctx := context.Background()
	got, err := c.ScreenSize(ctx)
	if err != nil {
		t.Fatalf("ScreenSize: %v", err)
	}
	if want := (desktop.Size{Width: 1024, Height: 768}); got != want {
		t.Fatalf("ScreenSize() = %v, want %v", got, want)
	}
	// Xvfb cannot change its framebuffer size, so another client announces
	// the resize the way the server does after a RANDR change: a
	// ConfigureNotify of the root window.
	xc, err := rawConn(s.Display)
	if err != nil {
		t.Fatal(err)
	}
	defer xc.Close()
	root := xproto.Setup(xc).DefaultScreen(xc).Root
	for _, want := range []desktop.Size{{Width: 800, Height: 600}, {Width: 1920, Height: 1080}, {Width: 1024, Height: 768}} {
		ev := xproto.ConfigureNotifyEvent{Event: root, Window: root, Width: uint16(want.Width), Height: uint16(want.Height)}
		if err := xproto.SendEventChecked(xc, false, root, xproto.EventMaskStructureNotify, string(ev.Bytes())).Check(); err != nil {
			t.Fatal(err)
		}
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := c.ScreenSize(ctx)
		if err != nil {
			t.Fatalf("ScreenSize: %v", err)
		}
		if got != want {
			t.Fatalf("after the root became %v, ScreenSize() = %v", want, got)
		}
		// Points are checked against the new size.
		err = c.MoveMouse(ctx, desktop.Point{X: want.Width, Y: 0})
		if !errors.Is(err, desktop.ErrInvalid) || desktop.CodeOf(err) != desktop.CodeOutOfBounds {
			t.Errorf("at %v, MoveMouse to x=%d: %v, want an out_of_bounds error", want, want.Width, err)
		}
	}
}

func TestInputRejectsBadArguments(t *testing.T) {
	_, c := testDisplay(t)
	ctx := context.Background()
	a := key(t, "a")
	tests := []struct {
		name string
		call func() error
	}{
		{"unknown button", func() error { return c.Click(ctx, "thumb", 1, nil) }},
		{"negative count", func() error { return c.Click(ctx, desktop.Left, -1, nil) }},
		{"too many clicks", func() error { return c.Click(ctx, desktop.Left, desktop.MaxClicks+1, nil) }},
		{"bad modifier", func() error { return c.Click(ctx, desktop.Left, 1, []desktop.Keysym{0}) }},
		{"button down unknown", func() error { return c.ButtonDown(ctx, "sixth") }},
		{"button up unknown", func() error { return c.ButtonUp(ctx, "sixth") }},
		{"move left of screen", func() error { return c.MoveMouse(ctx, desktop.Point{X: -1, Y: 10}) }},
		{"move below screen", func() error { return c.MoveMouse(ctx, desktop.Point{X: 10, Y: 768}) }},
		{"scroll too far", func() error { return c.Scroll(ctx, 0, desktop.MaxScroll+1, nil) }},
		{"drag without path", func() error { return c.Drag(ctx, nil, desktop.Left, nil) }},
		{"drag off screen", func() error {
			return c.Drag(ctx, []desktop.Point{{X: 1, Y: 1}, {X: 5000, Y: 1}}, desktop.Left, nil)
		}},
		{"combo without keys", func() error { return c.KeyCombo(ctx, nil) }},
		{"combo with NoSymbol", func() error { return c.KeyCombo(ctx, []desktop.Keysym{a, 0}) }},
		{"combo with VoidSymbol", func() error { return c.KeyCombo(ctx, []desktop.Keysym{0xffffff}) }},
		{"combo with a value out of range", func() error { return c.KeyCombo(ctx, []desktop.Keysym{0x20000000}) }},
		{"key down without keys", func() error { return c.KeyDown(ctx, nil) }},
		{"key up without keys", func() error { return c.KeyUp(ctx, nil) }},
		{"negative hold", func() error { return c.HoldKeys(ctx, []desktop.Keysym{a}, -time.Second) }},
		{"invalid UTF-8", func() error { return c.TypeText(ctx, "ok\xffno") }},
		{"bell character", func() error { return c.TypeText(ctx, "ding\a") }},
		{"NUL", func() error { return c.TypeText(ctx, "a\x00b") }},
		{"clipboard too large", func() error { return c.SetClipboard(ctx, strings.Repeat("x", MaxClipboard+1)) }},
		{"clipboard invalid UTF-8", func() error { return c.SetClipboard(ctx, "\xc3") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("got %v, want an error wrapping desktop.ErrInvalid", err)
			}
		})
	}
}

func TestInputHonoursCancelledContext(t *testing.T) {
	_, c := testDisplay(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"move":  func() error { return c.MoveMouse(ctx, desktop.Point{X: 1, Y: 1}) },
		"click": func() error { return c.Click(ctx, desktop.Left, 1, nil) },
		"key":   func() error { return c.KeyCombo(ctx, []desktop.Keysym{key(t, "a")}) },
		"type":  func() error { return c.TypeText(ctx, "abc") },
		"windows": func() error {
			_, err := c.Windows(ctx)
			return err
		},
		"clipboard": func() error {
			_, err := c.Clipboard(ctx)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", name, err)
		}
	}
}

func TestInputAfterCloseIsUnavailable(t *testing.T) {
	_, c := testDisplay(t)
	ctx := context.Background()
	if err := c.SetClipboard(ctx, "held"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	calls := map[string]func() error{
		"move":  func() error { return c.MoveMouse(ctx, desktop.Point{X: 1, Y: 1}) },
		"click": func() error { return c.Click(ctx, desktop.Left, 1, nil) },
		"key":   func() error { return c.KeyCombo(ctx, []desktop.Keysym{key(t, "a")}) },
		"type":  func() error { return c.TypeText(ctx, "abc") },
		"cursor": func() error {
			_, err := c.CursorPosition(ctx)
			return err
		},
		"windows": func() error {
			_, err := c.Windows(ctx)
			return err
		},
		"active": func() error {
			_, err := c.ActiveWindow(ctx)
			return err
		},
		"clipboard": func() error {
			_, err := c.Clipboard(ctx)
			return err
		},
		"set clipboard": func() error { return c.SetClipboard(ctx, "x") },
		"client count": func() error {
			_, err := c.ClientCount(ctx)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, desktop.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want an error wrapping desktop.ErrUnavailable", name, err)
		}
	}
}
