package x11

import (
	"context"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// captureState holds the shared-memory segment, the damage tracker and the
// encoded-frame caches.
type captureState struct{}

func (c *Conn) initCapture() error { c.cap = &captureState{}; return nil }
func (c *Conn) closeCapture()      {}

// Screenshot captures the screen and encodes it as opts say.
func (c *Conn) Screenshot(ctx context.Context, opts desktop.ScreenshotOptions) (*desktop.Image, error) {
	panic("todo")
}

// Settle waits until nothing has been drawn for quiet, or timeout passes.
// It reports whether the screen went quiet.
func (c *Conn) Settle(ctx context.Context, quiet, timeout time.Duration) (bool, error) { panic("todo") }

// Blank reports whether the whole screen is one colour (nothing painted).
func (c *Conn) Blank(ctx context.Context) (bool, error) { panic("todo") }
