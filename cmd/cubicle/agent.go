package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/agent"
	"github.com/cubicle-dev/cubicle/internal/display"
	"github.com/cubicle-dev/cubicle/internal/reaper"
)

const agentUsage = `usage: cubicle agent [flags]

Runs one desktop (Xvfb + XFCE) on a display and serves the desktop API.
Inside a sandbox it is pid 1; on a host it runs as root or as a normal user.

Examples:
  cubicle agent --display :1                       # start Xvfb + XFCE on :1, API on 127.0.0.1:49983
  cubicle agent --display :1 --resolution 1920x1080 --listen 127.0.0.1:8080
  cubicle agent --display :0 --attach              # drive an X server that is already running
  cubicle agent --display :0 --display-mode external  # serve envd at once; a client starts Xvfb + XFCE through it

Flags:
`

func runAgent(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, agentUsage); fs.PrintDefaults() }
	var (
		displayName = fs.String("display", envOr("CUBICLE_DISPLAY", ":0"), "X display to run or attach to")
		listen      = fs.String("listen", envOr("CUBICLE_AGENT_LISTEN", "127.0.0.1:49983"), "address of the desktop API")
		resolution  = fs.String("resolution", "1024x768", "screen size WIDTHxHEIGHT")
		depth       = fs.Int("depth", 24, "colour depth (24 or 16)")
		dpi         = fs.Int("dpi", 96, "screen resolution in dots per inch")
		glx         = fs.Bool("glx", false, "keep Xvfb's GLX extension (costs ~35 MB per desktop; XFCE and Firefox run without it)")
		session     = fs.String("session", display.SessionXFCE, "desktop session: xfce or none (a bare X server)")
		attach      = fs.Bool("attach", false, "drive an X server that already runs on --display instead of starting one")
		displayMode = fs.String("display-mode", envOr("CUBICLE_DISPLAY_MODE", agent.DisplayManaged), "managed (the agent runs Xvfb + XFCE) or external (a client starts the display through envd; the agent attaches when it appears)")
		userName    = fs.String("user", "", "run the session and launched apps as this user, in its home (needs root)")
		inheritEnv  = fs.Bool("inherit-env", false, "pass the agent's own environment to the desktop and every command (inside a sandbox: the env vars given at create)")
		home        = fs.String("home", "", "home directory of the desktop when --user is not given (default ~/.local/share/cubicle/home)")
		token       = fs.String("token", os.Getenv("CUBICLE_AGENT_TOKEN"), "access token required on every request (default $CUBICLE_AGENT_TOKEN)")
		maxText     = fs.Int("max-text", desktop.DefaultMaxText, "longest text one action may type, in characters")
		vncPort     = fs.Int("vnc-port", 5900, "loopback port of the VNC server started on demand")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat   = fs.String("log-format", "text", "text or json")
	)
	if code, ok := parseOnlyFlags(fs, args, stderr); !ok {
		return code
	}
	// Nothing the agent starts inherits the token.
	os.Unsetenv("CUBICLE_AGENT_TOKEN")
	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle agent: %v\n", err)
		return 2
	}
	num, err := parseDisplay(*displayName)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle agent: %v\n", err)
		return 2
	}
	w, h, err := parseResolution(*resolution)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle agent: %v\n", err)
		return 2
	}
	cfg := agent.Config{
		Manage:      !*attach && *displayMode != agent.DisplayExternal,
		DisplayMode: *displayMode,
		Token:       *token,
		Limits:      desktop.Limits{MaxText: *maxText},
		Logger:      log,
		Display: display.Config{
			Display: num, Width: w, Height: h, Depth: *depth, DPI: *dpi,
			GLX: *glx, Session: *session, VNCPort: *vncPort,
		},
	}
	if *inheritEnv {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CUBICLE_") && !strings.HasPrefix(kv, "DISPLAY=") {
				cfg.Display.Env = append(cfg.Display.Env, kv)
			}
		}
	}
	if !*attach {
		u, err := desktopUser(*userName, *home)
		if err != nil {
			fmt.Fprintf(stderr, "cubicle agent: %v\n", err)
			return 2
		}
		cfg.Display.User = u
	}

	// As pid 1 (inside a sandbox) the agent reaps every orphan and owns
	// every process it starts.
	if reaper.IsInit() {
		prewarmThreads(48)
		r := reaper.New(log.With("component", "reaper"))
		reaped := make(chan struct{})
		rctx, stopReaper := context.WithCancel(ctx)
		go func() { defer close(reaped); r.Run(rctx) }()
		defer func() { stopReaper(); <-reaped }()
		cfg.StartProcess = r.Start
		cfg.Display.Reaper = r
	}

	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle agent: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "cubicle agent: listen on %s: %v (is another agent running? pick another with --listen)\n", *listen, err)
		return 1
	}
	log.Info("agent listening", "address", ln.Addr().String(), "display", *displayName, "managed", cfg.Manage, "display_mode", *displayMode)
	if err := a.Run(ctx, ln); err != nil {
		fmt.Fprintf(stderr, "cubicle agent: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q: use text or json", format)
}

func parseDisplay(s string) (int, error) {
	t := strings.TrimPrefix(s, ":")
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t = t[:i]
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("bad --display %q: use a form like :1", s)
	}
	return n, nil
}

func parseResolution(s string) (int, int, error) {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if !ok || err1 != nil || err2 != nil || w < 64 || h < 64 || w > 8192 || h > 8192 {
		return 0, 0, fmt.Errorf("bad --resolution %q: use WIDTHxHEIGHT such as 1024x768 (64 to 8192 each)", s)
	}
	return w, h, nil
}

// desktopUser is the account the desktop runs as: --user in its own home,
// or this process in a home of the desktop's own, so the session's settings
// and files never mix with those of the person running the agent.
func desktopUser(name, home string) (*display.User, error) {
	if name != "" {
		if home != "" {
			return nil, fmt.Errorf("--home goes without --user: a user's desktop lives in that user's home")
		}
		return lookupUser(name)
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("look up the current user: %w", err)
	}
	if home == "" {
		base := os.Getenv("XDG_DATA_HOME")
		if base == "" {
			base = filepath.Join(u.HomeDir, ".local", "share")
		}
		home = filepath.Join(base, "cubicle", "home")
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("--home %s: %w", home, err)
	}
	du, err := fromOSUser(u)
	if err != nil {
		return nil, err
	}
	du.Home = home
	return du, nil
}

func lookupUser(name string) (*display.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--user %q: %v (create the user first, e.g. useradd -m %s)", name, err, name)
	}
	return fromOSUser(u)
}

func fromOSUser(u *user.User) (*display.User, error) {
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	du := &display.User{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil {
				du.Groups = append(du.Groups, uint32(g))
			}
		}
	}
	return du, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
