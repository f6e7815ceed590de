package x11

import (
	"context"
	"fmt"
	"slices"

	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

// dragStep is the longest jump between two motion events of a drag, in
// pixels, so toolkits see the pointer travel rather than teleport.
const dragStep = 16

// CursorPosition is where the pointer is.
func (c *Conn) CursorPosition(ctx context.Context) (desktop.Point, error) {
	if err := ctx.Err(); err != nil {
		return desktop.Point{}, fmt.Errorf("x11: cursor position: %w", err)
	}
	r, err := xproto.QueryPointer(c.xc, c.root).Reply()
	if err != nil {
		return desktop.Point{}, c.wrap("cursor position", err)
	}
	return desktop.Point{X: int(r.RootX), Y: int(r.RootY)}, nil
}

// MoveMouse moves the pointer to p.
func (c *Conn) MoveMouse(ctx context.Context, p desktop.Point) error {
	if err := c.checkInput(ctx, "move mouse"); err != nil {
		return err
	}
	if err := c.checkPoint(ctx, "move mouse", p); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	c.fakeMotion(p)
	return c.finish("move mouse")
}

// xButton maps a button name to its X button number.
func xButton(op string, b desktop.Button) (byte, error) {
	x := b.X11Button()
	if x == 0 {
		return 0, fmt.Errorf("x11: %s: %w", op, desktop.Errorf(desktop.CodeUnknownButton,
			"unknown button %q; use left, middle, right, back or forward", b))
	}
	return x, nil
}

// pressMods presses the modifier keys of a pointer action and returns the
// keycodes to release afterwards. Callers hold in.mu.
func (c *Conn) pressMods(ctx context.Context, op string, mods []desktop.Keysym) ([]xproto.Keycode, error) {
	if len(mods) == 0 {
		return nil, nil
	}
	if err := checkKeys(op, mods); err != nil {
		return nil, err
	}
	if err := c.ensureKeymap(); err != nil {
		return nil, err
	}
	codes, err := c.keycodes(ctx, op, mods, true)
	if err != nil {
		return nil, err
	}
	for _, kc := range codes {
		c.fakeKey(xproto.KeyPress, kc)
	}
	return codes, nil
}

func (c *Conn) releaseMods(codes []xproto.Keycode) {
	for _, kc := range slices.Backward(codes) {
		c.fakeKey(xproto.KeyRelease, kc)
	}
}

// Click presses and releases button count times (2: double click, 3:
// triple click), holding mods down. A count of 0 means 1.
func (c *Conn) Click(ctx context.Context, button desktop.Button, count int, mods []desktop.Keysym) error {
	b, err := xButton("click", button)
	if err != nil {
		return err
	}
	if count == 0 {
		count = 1
	}
	if count < 1 || count > desktop.MaxClicks {
		return fmt.Errorf("x11: click: count %d is not 1 to %d: %w", count, desktop.MaxClicks, desktop.ErrInvalid)
	}
	return c.withMods(ctx, "click", mods, func() {
		for range count {
			c.fakeButton(xproto.ButtonPress, b)
			c.fakeButton(xproto.ButtonRelease, b)
		}
	})
}

// withMods runs send with mods held, under the input lock, and ends with a
// round trip.
func (c *Conn) withMods(ctx context.Context, op string, mods []desktop.Keysym, send func()) error {
	if err := c.checkInput(ctx, op); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	codes, err := c.pressMods(ctx, op, mods)
	if err != nil {
		return err
	}
	send()
	c.releaseMods(codes)
	return c.finish(op)
}

// ButtonDown presses button and leaves it down. Close releases buttons
// still down.
func (c *Conn) ButtonDown(ctx context.Context, button desktop.Button) error {
	b, err := xButton("button down", button)
	if err != nil {
		return err
	}
	if err := c.checkInput(ctx, "button down"); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	c.fakeButton(xproto.ButtonPress, b)
	c.in.buttons[b]++
	return c.finish("button down")
}

// ButtonUp releases button. Releasing a button that is not down does
// nothing.
func (c *Conn) ButtonUp(ctx context.Context, button desktop.Button) error {
	b, err := xButton("button up", button)
	if err != nil {
		return err
	}
	if err := c.checkInput(ctx, "button up"); err != nil {
		return err
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	c.fakeButton(xproto.ButtonRelease, b)
	delete(c.in.buttons, b)
	return c.finish("button up")
}

// Scroll turns the wheel dy clicks down (negative: up) and dx clicks right
// (negative: left), holding mods down: X buttons 5/4 and 7/6, one press and
// release per click.
func (c *Conn) Scroll(ctx context.Context, dx, dy int, mods []desktop.Keysym) error {
	if magnitude(dx) > desktop.MaxScroll || magnitude(dy) > desktop.MaxScroll {
		return fmt.Errorf("x11: scroll: (%d, %d) is more than %d clicks: %w", dx, dy, desktop.MaxScroll, desktop.ErrInvalid)
	}
	wheel := func(n int, neg, pos byte) {
		b := pos
		if n < 0 {
			b, n = neg, -n
		}
		for range n {
			c.fakeButton(xproto.ButtonPress, b)
			c.fakeButton(xproto.ButtonRelease, b)
		}
	}
	return c.withMods(ctx, "scroll", mods, func() {
		wheel(dy, 4, 5)
		wheel(dx, 6, 7)
	})
}

// Drag presses button at path[0], moves through the points and releases at
// the last one, holding mods down. Between two points it sends a motion
// event at least every dragStep pixels.
func (c *Conn) Drag(ctx context.Context, path []desktop.Point, button desktop.Button, mods []desktop.Keysym) error {
	b, err := xButton("drag", button)
	if err != nil {
		return err
	}
	if len(path) == 0 {
		return fmt.Errorf("x11: drag: empty path: %w", desktop.ErrInvalid)
	}
	if len(path) > desktop.MaxPathPoints {
		return fmt.Errorf("x11: drag: %d points, the limit is %d: %w", len(path), desktop.MaxPathPoints, desktop.ErrInvalid)
	}
	for _, p := range path {
		if err := c.checkPoint(ctx, "drag", p); err != nil {
			return err
		}
	}
	return c.withMods(ctx, "drag", mods, func() {
		c.fakeMotion(path[0])
		c.fakeButton(xproto.ButtonPress, b)
		for i := 1; i < len(path); i++ {
			from, to := path[i-1], path[i]
			n := max((max(magnitude(to.X-from.X), magnitude(to.Y-from.Y))+dragStep-1)/dragStep, 1)
			for s := 1; s <= n; s++ {
				c.fakeMotion(desktop.Point{
					X: from.X + (to.X-from.X)*s/n,
					Y: from.Y + (to.Y-from.Y)*s/n,
				})
			}
		}
		c.fakeButton(xproto.ButtonRelease, b)
	})
}

func magnitude(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
