// Package display runs and supervises the display stack of one desktop: an
// Xvfb server, a private D-Bus session bus, the XFCE session and, on
// demand, an x11vnc server for the live view. Parts that die are restarted
// with backoff; Close stops everything, including the daemons the session
// re-parents away from us.
package display

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/reaper"
)

// Session kinds.
const (
	SessionXFCE = "xfce" // xfce4-session on a private session bus
	SessionNone = "none" // a bare X server
)

// Defaults applied to zero fields of Config.
const (
	DefaultWidth   = 1024
	DefaultHeight  = 768
	DefaultDepth   = 24
	DefaultDPI     = 96
	DefaultVNCPort = 5900
)

// TagEnv is the environment variable that marks every process started for a
// desktop, with the desktop's ID as its value. Close kills whatever still
// carries it.
const TagEnv = "CUBICLE_DESKTOP"

// Config describes one desktop.
type Config struct {
	// Display is the X display number: 0 for ":0".
	Display int
	// Width, Height, Depth and DPI shape the screen; zero means 1024, 768,
	// 24 and 96.
	Width, Height, Depth, DPI int
	// GLX keeps the GLX extension of Xvfb. Without it (the default) a desktop
	// costs about 110 MB instead of 145 MB and starts faster; Firefox and
	// XFCE work without it.
	GLX bool
	// Session is SessionXFCE (the default when empty) or SessionNone.
	Session string
	// User, when set and this process is root, is the account the bus, the
	// session, x11vnc and the launched apps run as, with its home as HOME.
	// Nil runs them as this process. The X server always runs as this
	// process.
	User *User
	// Env is extra environment ("KEY=value") for the session and launched
	// apps; it overrides the defaults.
	Env []string
	// VNCPort is the loopback port of x11vnc; zero means 5900.
	VNCPort int
	// Logger receives the supervisor's messages; nil discards them.
	Logger *slog.Logger
	// Reaper, when set, starts every process so that an orphan reaper
	// running in this process leaves their exit status alone.
	Reaper *reaper.Reaper
}

// User is the account a desktop's programs run as.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups; empty clears them.
	Groups []uint32
	Name   string
	Home   string
}

// VNCOptions say what x11vnc shows.
type VNCOptions struct {
	// Window is the X window to show; 0 shows the whole screen.
	Window uint32
	// ViewOnly ignores input from viewers.
	ViewOnly bool
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Width == 0 {
		c.Width = DefaultWidth
	}
	if c.Height == 0 {
		c.Height = DefaultHeight
	}
	if c.Depth == 0 {
		c.Depth = DefaultDepth
	}
	if c.DPI == 0 {
		c.DPI = DefaultDPI
	}
	if c.Session == "" {
		c.Session = SessionXFCE
	}
	if c.VNCPort == 0 {
		c.VNCPort = DefaultVNCPort
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks c. Zero fields that have a default are valid.
func (c Config) Validate() error {
	d := c.withDefaults()
	switch {
	case d.Display < 0 || d.Display > 65535:
		return invalid("display %d out of range 0-65535", d.Display)
	case d.Width < 1 || d.Width > 16384 || d.Height < 1 || d.Height > 16384:
		return invalid("screen %dx%d out of range 1-16384", d.Width, d.Height)
	case d.Depth != 8 && d.Depth != 15 && d.Depth != 16 && d.Depth != 24 && d.Depth != 30:
		return invalid("depth %d not one of 8, 15, 16, 24, 30", d.Depth)
	case d.DPI < 1 || d.DPI > 1000:
		return invalid("dpi %d out of range 1-1000", d.DPI)
	case d.Session != SessionXFCE && d.Session != SessionNone:
		return invalid("session %q not one of %q, %q", d.Session, SessionXFCE, SessionNone)
	case d.VNCPort < 1 || d.VNCPort > 65535:
		return invalid("vnc port %d out of range 1-65535", d.VNCPort)
	}
	if u := d.User; u != nil {
		if u.Name == "" || strings.ContainsAny(u.Name, "=\x00") {
			return invalid("user name %q", u.Name)
		}
		if !filepath.IsAbs(u.Home) {
			return invalid("home %q of user %s is not an absolute path", u.Home, u.Name)
		}
	}
	for _, kv := range d.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return invalid("environment entry %q is not KEY=value", kv)
		}
		if k == TagEnv {
			return invalid("environment entry %s is reserved", TagEnv)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("display: invalid config: %s: %w", fmt.Sprintf(format, args...), desktop.ErrInvalid)
}
