package openaicua

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/cua"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Desktop is what the tool drives. *client.Sandbox implements it.
type Desktop interface {
	DoBatch(ctx context.Context, b desktop.Batch) (*desktop.BatchResult, error)
	GetScreenSize(ctx context.Context) (desktop.Size, error)
}

// ErrRefused is the class of the error Run returns when the pending safety
// checks of a call were not approved; errors.Is(err, ErrRefused) tests it.
var ErrRefused = errors.New("safety checks not acknowledged")

// Config shapes a Tool.
type Config struct {
	// Screen is the size of the real screen; zero asks the desktop.
	Screen desktop.Size
	// Display is the size the model is shown; screenshots are scaled to it
	// and coordinates scaled back. Zero picks the profile (XGA 1024x768,
	// WXGA 1280x800, FWXGA 1366x768, 1080p 1920x1080) with the screen's
	// aspect ratio that is no larger than the screen.
	Display desktop.Size
	// Format of screenshots: "png" (default) or "jpeg".
	Format string
	// Settle is how the desktop waits, after the actions of a call, for the
	// screen to stop changing before the screenshot; nil is the agent's
	// default (100 ms quiet, at most 2 s).
	Settle *desktop.Settle
	// ScrollPixelsPerClick converts the pixels of a scroll action to mouse
	// wheel clicks; default 100.
	ScrollPixelsPerClick int
	// Wait is how long a wait action waits; default 1 s.
	Wait time.Duration
	// Approve decides on the pending safety checks of a call before any of
	// its actions runs: nil approves them, and they are acknowledged in the
	// output; an error refuses them, and Run returns an ErrRefused error
	// without acting. A nil Approve refuses every call that has pending
	// safety checks.
	Approve func(ctx context.Context, checks []SafetyCheck) error
}

// Tool runs computer_call items on a desktop. Its methods are safe for
// concurrent use, though calls of one conversation belong in order.
type Tool struct {
	d     Desktop
	scale cua.Scaler
	cfg   Config
}

// New returns a Tool for d. Unless cfg.Screen is set it asks the desktop
// for its screen size.
func New(ctx context.Context, d Desktop, cfg Config) (*Tool, error) {
	switch cfg.Format {
	case "", "png", "jpeg":
	default:
		return nil, fmt.Errorf("openaicua: unknown screenshot format %q; use png or jpeg", cfg.Format)
	}
	if cfg.ScrollPixelsPerClick < 0 || cfg.Wait < 0 || cfg.Wait > desktop.MaxDurationMS*time.Millisecond {
		return nil, fmt.Errorf("openaicua: scroll pixels per click must be positive and the wait 0 to %d ms", desktop.MaxDurationMS)
	}
	if cfg.ScrollPixelsPerClick == 0 {
		cfg.ScrollPixelsPerClick = 100
	}
	if cfg.Wait == 0 {
		cfg.Wait = time.Second
	}
	screen := cfg.Screen
	if screen == (desktop.Size{}) {
		s, err := d.GetScreenSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("openaicua: screen size: %w", err)
		}
		screen = s
	}
	sc, err := cua.NewScaler(screen, cfg.Display)
	if err != nil {
		return nil, fmt.Errorf("openaicua: %w", err)
	}
	return &Tool{d: d, scale: sc, cfg: cfg}, nil
}

// ParseDisplay reads a display size: a profile name (XGA, WXGA, FWXGA,
// 1080p) or WIDTHxHEIGHT.
func ParseDisplay(s string) (desktop.Size, error) { return cua.ParseDisplay(s) }

// Display returns the size the model is shown.
func (t *Tool) Display() desktop.Size { return t.scale.Display }

// Screen returns the size of the real screen.
func (t *Tool) Screen() desktop.Size { return t.scale.Screen }

// Definition is a computer tool's entry in the tools of a Responses API
// request; it marshals to the JSON the API expects.
type Definition struct {
	Type          string `json:"type"`
	DisplayWidth  int    `json:"display_width,omitempty"`
	DisplayHeight int    `json:"display_height,omitempty"`
	Environment   string `json:"environment,omitempty"`
}

// Definition returns the computer tool ({"type": "computer"}), whose calls
// carry a list of actions; the model learns the display size from the
// screenshots.
func (t *Tool) Definition() Definition { return Definition{Type: "computer"} }

// PreviewDefinition returns the computer_use_preview tool, with the display
// size and the "linux" environment.
func (t *Tool) PreviewDefinition() Definition {
	return Definition{Type: "computer_use_preview", DisplayWidth: t.scale.Display.Width,
		DisplayHeight: t.scale.Display.Height, Environment: "linux"}
}
