// Package agent is `cubicle agent`: the daemon that runs one desktop. It
// supervises the display stack (Xvfb, the XFCE session, x11vnc on demand),
// keeps one X connection to it, and serves the desktop API over HTTP.
// Inside a sandbox it is pid 1.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
	"github.com/cubicle-dev/cubicle/internal/envd"
	"github.com/cubicle-dev/cubicle/internal/launch"
	"github.com/cubicle-dev/cubicle/internal/x11"
)

// Config is everything the agent needs. Flags fill it in main.
type Config struct {
	// Display configures the supervised display stack. When Manage is false
	// only Display.Display is used: the agent attaches to a display that
	// something else runs.
	Display display.Config
	Manage  bool
	// DisplayMode is DisplayManaged (the default when empty) or
	// DisplayExternal, which needs Manage false and takes Display.User as
	// the desktop user.
	DisplayMode string
	// Token, when set, is required on every request but /health.
	Token string
	// Limits bounds actions; its Screen is filled in from the display.
	Limits desktop.Limits
	// Logger is the agent's logger; nil discards.
	Logger *slog.Logger
	// StartProcess starts launched applications (a reaper's Start when the
	// agent is pid 1); nil uses exec.Cmd.Start.
	StartProcess func(*exec.Cmd) error
}

// Validate checks c.
func (c *Config) Validate() error {
	if err := c.validateDisplayMode(); err != nil {
		return err
	}
	if c.Manage {
		return c.Display.Validate()
	}
	if c.Display.Display < 0 {
		return fmt.Errorf("agent: display number %d is negative", c.Display.Display)
	}
	return nil
}

// Agent runs one desktop. Create it with New and call Run.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	sup    *display.Supervisor // nil when attached to a foreign display
	launch *launch.Launcher
	cmds   *commands // commands started through the API
	envd   *envd.Service

	mu      sync.Mutex
	x       *x11.Conn     // nil until connected
	ready   bool          // the desktop passed its readiness checks on x
	reason  string        // why it is not ready
	readyCh chan struct{} // closed when ready becomes true

	// actMu makes batches atomic with respect to each other: one agent's
	// actions never interleave with another's.
	actMu sync.Mutex
}

// New checks cfg and prepares an agent; nothing starts before Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, readyCh: make(chan struct{}), reason: "starting the display"}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Manage {
		dc := cfg.Display
		dc.Logger = a.log.With("component", "display")
		sup, err := display.New(dc)
		if err != nil {
			return nil, err
		}
		a.sup = sup
	}
	lc := launch.Config{Start: cfg.StartProcess, Logger: a.log.With("component", "launch")}
	if a.sup != nil {
		lc.Env = a.sup.Env
		lc.SysProcAttr = a.sup.SysProcAttr
		if u := cfg.Display.User; u != nil {
			lc.Dir = u.Home
		}
	} else {
		n := cfg.Display.Display
		lc.Env = func() []string { return attachedEnv(n) }
		if cfg.external() {
			a.externalLaunch(&lc)
		}
	}
	a.launch = launch.New(lc)
	a.cmds = newCommands(a)
	ev, err := a.newEnvd()
	if err != nil {
		return nil, err
	}
	a.envd = ev
	return a, nil
}

// Run starts the display stack (when managed), serves the API on ln and
// keeps the X connection alive until ctx ends; then it shuts everything down
// and returns. The API answers from the start: until the desktop is ready,
// actions get 503 not_ready.
func (a *Agent) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Longer than the idle time of the server's proxy and of the Go
		// client (90 s): a connection they keep must not be closed here
		// first, or a request sent on it as it closes fails.
		IdleTimeout: 5 * time.Minute,
		ErrorLog:    slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	err := a.startDisplay(runCtx)
	if err == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.keepConnected(runCtx)
		}()
		select {
		case <-ctx.Done():
		case err = <-serveErr:
		}
	}
	stop()
	wg.Wait()

	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	a.shutdown(shutCtx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (a *Agent) startDisplay(ctx context.Context) error {
	if a.sup == nil {
		// Someone else runs the X server (or, in the external display
		// mode, starts it later through envd).
		a.setReady(false, "waiting for the X server on "+a.displayName())
		return nil
	}
	a.setReady(false, "starting the display")
	if err := a.sup.Start(ctx); err != nil {
		a.setReady(false, err.Error())
		return fmt.Errorf("agent: start display: %w", err)
	}
	return nil
}

func (a *Agent) shutdown(ctx context.Context) {
	a.cmds.close()
	if err := a.envd.Close(ctx); err != nil {
		a.log.Warn("envd shutdown", "error", err)
	}
	a.launch.Close(ctx)
	a.mu.Lock()
	x := a.x
	a.x = nil
	a.mu.Unlock()
	if x != nil {
		x.Close()
	}
	if a.sup != nil {
		if err := a.sup.Close(ctx); err != nil {
			a.log.Warn("display shutdown", "error", err)
		}
	}
}

// keepConnected dials the display, waits for readiness, and redials when
// the X server goes away or the supervisor restarts it.
func (a *Agent) keepConnected(ctx context.Context) {
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		x, err := x11.Dial(ctx, x11.Config{Display: a.displayName(), ShmOwner: a.shmOwner(), Logger: a.log.With("component", "x11")})
		if err != nil {
			a.setReady(false, "waiting for the X server: "+err.Error())
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 20 * time.Millisecond
		a.mu.Lock()
		a.x = x
		a.mu.Unlock()
		a.log.Info("connected to display", "display", a.displayName())

		a.waitReady(ctx, x)

		var changed <-chan struct{}
		if a.sup != nil {
			changed = a.sup.XChanged()
		}
		select {
		case <-ctx.Done():
		case <-x.Done():
			a.log.Warn("X connection lost", "error", x.Err())
		case <-changed:
			a.log.Warn("X server restarted")
		}
		a.mu.Lock()
		a.x = nil
		a.mu.Unlock()
		a.setReady(false, "the X server restarted")
		x.Close()
	}
}

// waitReady polls the readiness checks until they pass or x dies.
func (a *Agent) waitReady(ctx context.Context, x *x11.Conn) {
	start, last := time.Now(), ""
	for {
		reason, err := a.check(ctx, x)
		if err == nil && reason == "" {
			a.setReady(false, "waiting for the desktop to finish drawing")
			quiet := a.settleDrawing(ctx, x)
			a.setReady(true, "")
			a.log.Info("desktop ready", "after_ms", time.Since(start).Milliseconds(), "screen_quiet", quiet)
			return
		}
		if err != nil {
			reason = err.Error()
		}
		if reason != last {
			a.log.Debug("desktop not ready", "reason", reason, "after_ms", time.Since(start).Milliseconds())
			last = reason
		}
		a.setReady(false, reason)
		select {
		case <-ctx.Done():
			return
		case <-x.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// After its windows map, the desktop goes on drawing for a moment (the
// panel's plugins, the desktop icons): readiness waits until the screen has
// been quiet for readyQuiet, at most readySettle, so that the first
// screenshot shows the whole desktop.
const (
	readyQuiet  = 300 * time.Millisecond
	readySettle = 3 * time.Second
)

// settleDrawing waits for the managed desktop to finish drawing and reports
// whether the screen went quiet; a desktop that keeps drawing (an animation)
// is ready anyway when readySettle has passed.
func (a *Agent) settleDrawing(ctx context.Context, x *x11.Conn) bool {
	if a.sup == nil || a.cfg.Display.Session == display.SessionNone {
		return true
	}
	quiet, err := x.Settle(ctx, readyQuiet, readySettle)
	if err != nil {
		a.log.Debug("waiting for the desktop to finish drawing", "err", err)
	}
	return quiet
}

// check returns "" when the desktop is ready, or what it waits for.
func (a *Agent) check(ctx context.Context, x *x11.Conn) (string, error) {
	if a.sup == nil || a.cfg.Display.Session == display.SessionNone {
		return "", nil
	}
	wm, err := x.WindowManager(ctx)
	if err != nil {
		return "", err
	}
	if wm == "" {
		return "waiting for the window manager", nil
	}
	panel, err := x.MappedClass(ctx, "xfce4-panel")
	if err != nil {
		return "", err
	}
	if !panel {
		return "waiting for the panel", nil
	}
	blank, err := x.Blank(ctx)
	if err != nil {
		return "", err
	}
	if blank {
		return "waiting for the first frame", nil
	}
	return "", nil
}

func (a *Agent) setReady(ready bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ready && !a.ready {
		close(a.readyCh)
	}
	if !ready && a.ready {
		a.readyCh = make(chan struct{})
	}
	a.ready, a.reason = ready, reason
}

// conn returns the X connection if the desktop is ready.
func (a *Agent) conn() (*x11.Conn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ready || a.x == nil {
		return nil, desktop.Errorf(desktop.CodeNotReady, "the desktop is not ready yet (%s); poll GET /v1/ready?wait=30s", a.reason)
	}
	return a.x, nil
}

// Readiness reports the state of the desktop.
func (a *Agent) Readiness(ctx context.Context) desktop.Readiness {
	a.mu.Lock()
	r := desktop.Readiness{Ready: a.ready, Reason: a.reason}
	x := a.x
	a.mu.Unlock()
	if a.sup != nil {
		r.Parts = a.sup.Status()
	}
	if x != nil && r.Ready {
		if s, err := x.ScreenSize(ctx); err == nil {
			r.Screen = &s
		}
	}
	return r
}

// WaitReady blocks until the desktop is ready or ctx ends.
func (a *Agent) WaitReady(ctx context.Context) error {
	for {
		a.mu.Lock()
		ready, ch := a.ready, a.readyCh
		a.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (a *Agent) displayName() string {
	return fmt.Sprintf(":%d", a.cfg.Display.Display)
}

// shmOwner is the uid the X server runs as, when it is not ours: the
// supervisor runs Xvfb as this process, so there is none.
func (a *Agent) shmOwner() int { return a.externalShmOwner() }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// attachedEnv is the environment for apps launched on a display the agent
// does not manage: its own, with DISPLAY pointing at that display.
func attachedEnv(n int) []string {
	env := os.Environ()
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "DISPLAY=") {
			out = append(out, kv)
		}
	}
	return append(out, fmt.Sprintf("DISPLAY=:%d", n))
}
