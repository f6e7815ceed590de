package x11

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/res"
	"github.com/jezek/xgb/xproto"
	"github.com/jezek/xgb/xtest"

	"github.com/cubicle-dev/cubicle/desktop"
)

// inputState holds the keyboard map and the lock that keeps one caller's
// XTEST sequence from interleaving with another's, plus the screen size,
// clipboard and X-Resource state that the event handler of this file feeds.
type inputState struct {
	// xtestErr is why XTEST is not usable, or nil.
	xtestErr error
	// resErr is why X-Resource is not usable, or nil.
	resErr error

	// mu serialises input sequences. It guards kb, keys and buttons.
	mu sync.Mutex
	kb keymap
	// keys counts the presses of each keycode that are not released yet;
	// buttons the same for pointer buttons.
	keys    map[xproto.Keycode]int
	buttons map[byte]int
	// settle is remapSettle; tests may raise it.
	settle time.Duration

	// mapMu guards the fields below; the event handler takes it, so it is
	// never held across a request.
	mapMu sync.Mutex
	// ownNotify counts the MappingNotify events still to come for keycodes
	// we remapped ourselves: those do not invalidate kb.
	ownNotify map[xproto.Keycode]int
	mapDirty  bool

	screen screenState
	clip   clipState
}

// screenState is the screen size, kept current by the root window's
// ConfigureNotify events.
type screenState struct {
	mu   sync.Mutex
	size desktop.Size
}

func (c *Conn) initInput() error {
	in := &inputState{
		keys:      map[xproto.Keycode]int{},
		buttons:   map[byte]int{},
		ownNotify: map[xproto.Keycode]int{},
		settle:    remapSettle,
	}
	in.screen.size = desktop.Size{Width: int(c.screen.WidthInPixels), Height: int(c.screen.HeightInPixels)}
	in.clip.init()
	c.in = in

	if err := c.initExt("XTEST", xtest.Init); err != nil {
		in.xtestErr = fmt.Errorf("x11: XTEST extension missing: %v: %w", err, desktop.ErrUnavailable)
	}
	if err := c.initExt("X-Resource", res.Init); err != nil {
		in.resErr = fmt.Errorf("x11: X-Resource extension missing: %v: %w", err, desktop.ErrUnavailable)
	}
	// A RANDR size change resizes the root window, which reports it with a
	// ConfigureNotify: the core event needs no extension event decoder
	// (xgb registers those in package-level maps that other connections
	// read unlocked).
	attrs, err := xproto.GetWindowAttributes(c.xc, c.root).Reply()
	if err != nil {
		return c.wrap("read root event mask", err)
	}
	err = xproto.ChangeWindowAttributesChecked(c.xc, c.root, xproto.CwEventMask,
		[]uint32{attrs.YourEventMask | xproto.EventMaskStructureNotify}).Check()
	if err != nil {
		return c.wrap("select root structure events", err)
	}
	if err := c.initClipboard(); err != nil {
		return err
	}
	c.handle(c.onInputEvent)

	in.mu.Lock()
	defer in.mu.Unlock()
	return c.loadKeymap()
}

// closeInput releases every key and button still held through this
// connection and gives back the keycodes it remapped, so nothing stays
// stuck or changed after the connection ends.
func (c *Conn) closeInput() {
	in := c.in
	if in == nil {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.xtestErr == nil {
		for b, n := range in.buttons {
			if n > 0 {
				c.fakeButton(xproto.ButtonRelease, b)
			}
		}
		for kc, n := range in.keys {
			if n > 0 {
				c.fakeKey(xproto.KeyRelease, kc)
			}
		}
	}
	clear(in.buttons)
	clear(in.keys)
	c.restoreSpares()
}

// onInputEvent runs on the event loop for every event.
func (c *Conn) onInputEvent(ev xgb.Event) {
	switch e := ev.(type) {
	case xproto.MappingNotifyEvent:
		c.onMappingNotify(e)
	case xproto.ConfigureNotifyEvent:
		if e.Window == c.root {
			c.in.screen.mu.Lock()
			c.in.screen.size = desktop.Size{Width: int(e.Width), Height: int(e.Height)}
			c.in.screen.mu.Unlock()
		}
	case xproto.SelectionRequestEvent:
		c.onSelectionRequest(e)
	case xproto.SelectionClearEvent:
		c.onSelectionClear(e)
	case xproto.SelectionNotifyEvent:
		c.onSelectionNotify(e)
	case xproto.PropertyNotifyEvent:
		c.onPropertyNotify(e)
	}
}

// ScreenSize is the size of the screen. It follows RANDR size changes (the
// root window reports them) and costs no round trip.
func (c *Conn) ScreenSize(ctx context.Context) (desktop.Size, error) {
	if err := ctx.Err(); err != nil {
		return desktop.Size{}, fmt.Errorf("x11: screen size: %w", err)
	}
	c.in.screen.mu.Lock()
	defer c.in.screen.mu.Unlock()
	return c.in.screen.size, nil
}

// checkInput reports whether input can be sent at all.
func (c *Conn) checkInput(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("x11: %s: %w", op, err)
	}
	if err := c.Err(); err != nil {
		return err
	}
	return c.in.xtestErr
}

// checkPoint reports whether p lies on the screen.
func (c *Conn) checkPoint(ctx context.Context, op string, p desktop.Point) error {
	size, err := c.ScreenSize(ctx)
	if err != nil {
		return err
	}
	if p.X < 0 || p.Y < 0 || p.X >= size.Width || p.Y >= size.Height {
		return fmt.Errorf("x11: %s: %w", op, desktop.Errorf(desktop.CodeOutOfBounds,
			"point (%d, %d) is outside the %dx%d screen", p.X, p.Y, size.Width, size.Height))
	}
	return nil
}

// fakeKey sends one key event. Like every fake* it does not wait.
func (c *Conn) fakeKey(typ byte, kc xproto.Keycode) {
	xtest.FakeInput(c.xc, typ, byte(kc), 0, c.root, 0, 0, 0)
}

func (c *Conn) fakeButton(typ byte, button byte) {
	xtest.FakeInput(c.xc, typ, button, 0, c.root, 0, 0, 0)
}

func (c *Conn) fakeMotion(p desktop.Point) {
	xtest.FakeInput(c.xc, xproto.MotionNotify, 0, 0, c.root, int16(p.X), int16(p.Y), 0)
}

// finish ends an input sequence: one round trip, so the server has
// processed every event when the call returns.
func (c *Conn) finish(op string) error {
	if _, err := xproto.GetInputFocus(c.xc).Reply(); err != nil {
		return c.wrap(op, err)
	}
	return nil
}
