package agent

import (
	"fmt"
	"os"
	"syscall"

	"github.com/cubicle-dev/cubicle/internal/envd"
	"github.com/cubicle-dev/cubicle/internal/launch"
)

// Display modes of the agent.
const (
	// DisplayManaged: the agent runs and supervises Xvfb and the XFCE
	// session itself (or, without Manage, drives one that already runs).
	DisplayManaged = "managed"
	// DisplayExternal: the agent starts no display. Whoever uses the
	// sandbox starts one through envd (as @e2b/desktop's Desktop.create
	// does: Xvfb, then startxfce4); the agent serves envd at once and
	// attaches its desktop API when the X server appears. Until then the
	// desktop endpoints answer 503 not_ready.
	DisplayExternal = "external"
)

// external reports whether the agent runs in DisplayExternal mode.
func (c *Config) external() bool { return c.DisplayMode == DisplayExternal }

// validateDisplayMode checks DisplayMode against Manage.
func (c *Config) validateDisplayMode() error {
	switch c.DisplayMode {
	case "", DisplayManaged:
		return nil
	case DisplayExternal:
		if c.Manage {
			return fmt.Errorf("agent: display mode %q starts no display: Manage must be false", c.DisplayMode)
		}
		return nil
	}
	return fmt.Errorf("agent: unknown display mode %q: use %q or %q", c.DisplayMode, DisplayManaged, DisplayExternal)
}

// newEnvd builds the E2B-compatible envd service of the agent: processes
// and file operations as the desktop user (or root), with the desktop's
// environment.
func (a *Agent) newEnvd() (*envd.Service, error) {
	return envd.New(envd.Config{
		Token:        a.cfg.Token,
		Lookup:       a.envdUser,
		Env:          a.desktopEnv,
		StartProcess: a.cfg.StartProcess,
		Logger:       a.log.With("component", "envd"),
	})
}

// envdUser resolves an envd user name: "" and "user" are the desktop user,
// "root" is root.
func (a *Agent) envdUser(name string) (*envd.User, error) {
	acct, err := a.account(name)
	if err != nil {
		return nil, err
	}
	return &envd.User{
		Name: acct.name, UID: acct.uid, GID: acct.gid,
		Home:        acct.homeIn(a.desktopEnv()),
		SysProcAttr: acct.sysProcAttr(),
		Do:          acct.do,
	}, nil
}

// externalLaunch makes apps launched on an external display run as the
// desktop user, in its home.
func (a *Agent) externalLaunch(lc *launch.Config) {
	acct, err := a.account("")
	if err != nil {
		return
	}
	lc.SysProcAttr = func() *syscall.SysProcAttr { return acct.sysProcAttr() }
	lc.Dir = acct.homeIn(a.desktopEnv())
}

// externalShmOwner is the uid an external X server most likely runs as:
// the desktop user, when the agent runs as root and switches to it.
func (a *Agent) externalShmOwner() int {
	if u := a.cfg.Display.User; a.cfg.external() && u != nil && os.Geteuid() == 0 {
		return int(u.UID)
	}
	return 0
}
