package x11

import (
	"context"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// inputState holds the keyboard map and the lock that keeps one caller's
// XTEST sequence from interleaving with another's.
type inputState struct{}

func (c *Conn) initInput() error { c.in = &inputState{}; return nil }
func (c *Conn) closeInput()      {}

// ScreenSize is the size of the screen (RANDR).
func (c *Conn) ScreenSize(ctx context.Context) (desktop.Size, error) {
	return desktop.Size{Width: int(c.screen.WidthInPixels), Height: int(c.screen.HeightInPixels)}, nil
}

// CursorPosition is where the pointer is.
func (c *Conn) CursorPosition(ctx context.Context) (desktop.Point, error) { panic("todo") }

// MoveMouse moves the pointer to p.
func (c *Conn) MoveMouse(ctx context.Context, p desktop.Point) error { panic("todo") }

// Click presses and releases button count times, holding mods down.
func (c *Conn) Click(ctx context.Context, button desktop.Button, count int, mods []desktop.Keysym) error {
	panic("todo")
}

// ButtonDown presses button and leaves it down.
func (c *Conn) ButtonDown(ctx context.Context, button desktop.Button) error { panic("todo") }

// ButtonUp releases button.
func (c *Conn) ButtonUp(ctx context.Context, button desktop.Button) error { panic("todo") }

// Scroll turns the wheel dy clicks down (negative: up) and dx clicks right
// (negative: left), holding mods down.
func (c *Conn) Scroll(ctx context.Context, dx, dy int, mods []desktop.Keysym) error { panic("todo") }

// Drag presses button at path[0], moves through the points and releases at
// the last one, holding mods down.
func (c *Conn) Drag(ctx context.Context, path []desktop.Point, button desktop.Button, mods []desktop.Keysym) error {
	panic("todo")
}

// KeyCombo presses keys in order and releases them in reverse.
func (c *Conn) KeyCombo(ctx context.Context, keys []desktop.Keysym) error { panic("todo") }

// KeyDown presses keys in order and leaves them down.
func (c *Conn) KeyDown(ctx context.Context, keys []desktop.Keysym) error { panic("todo") }

// KeyUp releases keys in reverse order.
func (c *Conn) KeyUp(ctx context.Context, keys []desktop.Keysym) error { panic("todo") }

// HoldKeys presses keys, waits d, and releases them.
func (c *Conn) HoldKeys(ctx context.Context, keys []desktop.Keysym, d time.Duration) error {
	panic("todo")
}

// TypeText types text as key strokes.
func (c *Conn) TypeText(ctx context.Context, text string) error { panic("todo") }

// Windows lists the top-level application windows (EWMH client list).
func (c *Conn) Windows(ctx context.Context) ([]desktop.Window, error) { panic("todo") }

// ActiveWindow is the id of the focused window, or 0.
func (c *Conn) ActiveWindow(ctx context.Context) (uint32, error) { panic("todo") }

// FocusWindow raises and focuses window id.
func (c *Conn) FocusWindow(ctx context.Context, id uint32) error { panic("todo") }

// Clipboard returns the text on the CLIPBOARD selection.
func (c *Conn) Clipboard(ctx context.Context) (string, error) { panic("todo") }

// SetClipboard puts text on the CLIPBOARD selection and serves it until
// another client takes it.
func (c *Conn) SetClipboard(ctx context.Context, text string) error { panic("todo") }

// ClientCount is the number of clients connected to the X server
// (X-Resource), used to check that nothing leaks connections.
func (c *Conn) ClientCount(ctx context.Context) (int, error) { panic("todo") }
