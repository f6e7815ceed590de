package claudetool

import (
	"context"
	"fmt"

	"github.com/cubicle-dev/cubicle/cua"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Version is a version of Anthropic's computer tool, the "type" of its
// definition.
type Version string

// The versions of the computer tool. Each has the actions of the one before
// and more: computer_20250124 adds left_mouse_down, left_mouse_up, scroll,
// hold_key, wait and triple_click (and modifier keys held during clicks and
// scrolls); computer_20251124 adds zoom.
const (
	Computer20241022 Version = "computer_20241022"
	Computer20250124 Version = "computer_20250124"
	Computer20251124 Version = "computer_20251124"
)

// Beta returns the value of the anthropic-beta header the version needs.
func (v Version) Beta() string {
	switch v {
	case Computer20241022:
		return "computer-use-2024-10-22"
	case Computer20250124:
		return "computer-use-2025-01-24"
	case Computer20251124:
		return "computer-use-2025-11-24"
	}
	return ""
}

// Name is the name of the computer tool in tool definitions and tool_use
// blocks.
const Name = "computer"

// Desktop is what the tool drives. *client.Sandbox implements it.
type Desktop interface {
	DoBatch(ctx context.Context, b desktop.Batch) (*desktop.BatchResult, error)
	GetScreenSize(ctx context.Context) (desktop.Size, error)
}

// Config shapes a Tool. The zero Config is computer_20251124 without zoom,
// on a display profile chosen for the screen, with PNG screenshots.
type Config struct {
	// Version is the tool version the model is given; default
	// Computer20251124.
	Version Version
	// Screen is the size of the real screen; zero asks the desktop.
	Screen desktop.Size
	// Display is the size the model is shown; screenshots are scaled to it
	// and coordinates scaled back. Zero picks the profile (XGA 1024x768,
	// WXGA 1280x800, FWXGA 1366x768, 1080p 1920x1080) with the screen's
	// aspect ratio that is no larger than the screen (see ParseDisplay).
	Display desktop.Size
	// DisplayNumber, when set, is sent as the X display number.
	DisplayNumber *int
	// EnableZoom offers the zoom action (computer_20251124 only).
	EnableZoom bool
	// Format of screenshots: "png" (default) or "jpeg".
	Format string
	// Settle is how the desktop waits, after the actions of a turn, for the
	// screen to stop changing before the screenshot; nil is the agent's
	// default (100 ms quiet, at most 2 s).
	Settle *desktop.Settle
	// NoScreenshot leaves out the screenshot that otherwise goes with the
	// result of the last call of a turn that acted on the screen.
	NoScreenshot bool
}

// Tool runs the computer tool's calls on a desktop. Its methods are safe
// for concurrent use, though calls from one conversation belong in order.
type Tool struct {
	d       Desktop
	version Version
	scale   cua.Scaler
	cfg     Config
}

// New returns a Tool for d. Unless cfg.Screen is set it asks the desktop
// for its screen size.
func New(ctx context.Context, d Desktop, cfg Config) (*Tool, error) {
	if cfg.Version == "" {
		cfg.Version = Computer20251124
	}
	if cfg.Version.Beta() == "" {
		return nil, fmt.Errorf("claudetool: unknown tool version %q; use %s, %s or %s", cfg.Version, Computer20241022, Computer20250124, Computer20251124)
	}
	if cfg.EnableZoom && cfg.Version != Computer20251124 {
		return nil, fmt.Errorf("claudetool: zoom needs %s, not %s", Computer20251124, cfg.Version)
	}
	switch cfg.Format {
	case "", "png", "jpeg":
	default:
		return nil, fmt.Errorf("claudetool: unknown screenshot format %q; use png or jpeg", cfg.Format)
	}
	screen := cfg.Screen
	if screen == (desktop.Size{}) {
		s, err := d.GetScreenSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("claudetool: screen size: %w", err)
		}
		screen = s
	}
	sc, err := cua.NewScaler(screen, cfg.Display)
	if err != nil {
		return nil, fmt.Errorf("claudetool: %w", err)
	}
	return &Tool{d: d, version: cfg.Version, scale: sc, cfg: cfg}, nil
}

// ParseDisplay reads a display size: a profile name (XGA, WXGA, FWXGA,
// 1080p) or WIDTHxHEIGHT.
func ParseDisplay(s string) (desktop.Size, error) { return cua.ParseDisplay(s) }

// Display returns the size the model is shown.
func (t *Tool) Display() desktop.Size { return t.scale.Display }

// Screen returns the size of the real screen.
func (t *Tool) Screen() desktop.Size { return t.scale.Screen }

// Version returns the tool version.
func (t *Tool) Version() Version { return t.version }

// Definition is the computer tool's entry in the tools of a Messages API
// request; it marshals to the JSON the API expects.
type Definition struct {
	Type            Version `json:"type"`
	Name            string  `json:"name"`
	DisplayWidthPx  int     `json:"display_width_px"`
	DisplayHeightPx int     `json:"display_height_px"`
	DisplayNumber   *int    `json:"display_number,omitempty"`
	EnableZoom      bool    `json:"enable_zoom,omitempty"`
}

// Definition returns the tool definition to send to the model.
func (t *Tool) Definition() Definition {
	return Definition{
		Type:            t.version,
		Name:            Name,
		DisplayWidthPx:  t.scale.Display.Width,
		DisplayHeightPx: t.scale.Display.Height,
		DisplayNumber:   t.cfg.DisplayNumber,
		EnableZoom:      t.cfg.EnableZoom,
	}
}
