package launch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/proc"
)

// Config says how launched processes run.
type Config struct {
	// Env is the environment of every launched process (DISPLAY, HOME,
	// DBUS_SESSION_BUS_ADDRESS, PATH, ...). Called on each launch.
	Env func() []string
	// SysProcAttr gives credentials and process-group settings; nil runs
	// as this process in a new process group.
	SysProcAttr func() *syscall.SysProcAttr
	// Dir is the working directory (the desktop user's home).
	Dir string
	// Start starts a command (a reaper's Start inside a sandbox); nil uses
	// cmd.Start.
	Start func(*exec.Cmd) error
	// Logger gets one line per launch.
	Logger *slog.Logger
}

// Launcher starts applications and owns them until Close.
type Launcher struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	live map[int]*exec.Cmd
	wg   sync.WaitGroup
}

// New returns a Launcher.
func New(cfg Config) *Launcher {
	l := &Launcher{cfg: cfg, log: cfg.Logger, live: map[int]*exec.Cmd{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

func (l *Launcher) env() []string {
	if l.cfg.Env == nil {
		return os.Environ()
	}
	return l.cfg.Env()
}

// App starts the application of a .desktop file by name, handing it uri
// when given.
func (l *Launcher) App(ctx context.Context, name, uri string) (int, error) {
	env := l.env()
	e, err := Find(name, DataDirs(env, l.cfg.Dir))
	if err != nil {
		return 0, err
	}
	var uris []string
	if uri != "" {
		uris = []string{uri}
	}
	argv, err := e.Argv(uris)
	if err != nil {
		return 0, err
	}
	if e.Terminal {
		argv = append([]string{"x-terminal-emulator", "-e"}, argv...)
	}
	return l.start(argv, env, e.Path)
}

// Command starts argv as it is (no shell), with uri appended when given.
func (l *Launcher) Command(ctx context.Context, argv []string, uri string) (int, error) {
	if len(argv) == 0 || argv[0] == "" {
		return 0, fmt.Errorf("launch: empty command: %w", desktop.ErrInvalid)
	}
	if uri != "" {
		argv = append(append([]string{}, argv...), uri)
	}
	return l.start(argv, l.env(), "")
}

// Open opens a file or URL with its default application through xdg-open.
func (l *Launcher) Open(ctx context.Context, target string) (int, error) {
	if target == "" || strings.ContainsRune(target, 0) {
		return 0, fmt.Errorf("launch: open needs a file path or URL: %w", desktop.ErrInvalid)
	}
	// "--" is not understood by xdg-open; a target starting with "-" is
	// made a path so it cannot be read as an option.
	if strings.HasPrefix(target, "-") {
		target = "./" + target
	}
	return l.start([]string{"xdg-open", target}, l.env(), "")
}

func (l *Launcher) start(argv, env []string, dir string) (int, error) {
	path, err := lookPath(argv[0], env)
	if err != nil {
		return 0, err
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Dir: dir}
	if cmd.Dir == "" {
		cmd.Dir = l.cfg.Dir
	}
	if cmd.Dir != "" {
		if st, err := os.Stat(cmd.Dir); err != nil || !st.IsDir() {
			cmd.Dir = ""
		}
	}
	if l.cfg.SysProcAttr != nil {
		cmd.SysProcAttr = l.cfg.SysProcAttr()
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	start := cmd.Start
	if l.cfg.Start != nil {
		start = func() error { return l.cfg.Start(cmd) }
	}
	if err := start(); err != nil {
		return 0, fmt.Errorf("launch: start %s: %w", argv[0], err)
	}
	pid := cmd.Process.Pid
	l.log.Info("launched", "program", argv[0], "pid", pid)
	l.mu.Lock()
	l.live[pid] = cmd
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		cmd.Wait()
		l.mu.Lock()
		delete(l.live, pid)
		l.mu.Unlock()
	}()
	return pid, nil
}

// Close stops every process still running that this Launcher started (its
// whole process group): SIGTERM, then SIGKILL after the deadline of ctx or
// five seconds. It returns when the groups are empty.
func (l *Launcher) Close(ctx context.Context) {
	l.mu.Lock()
	pids := make([]int, 0, len(l.live))
	for pid := range l.live {
		pids = append(pids, pid)
	}
	l.mu.Unlock()
	for _, pid := range pids {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	end := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok {
		end = d
	}
	select {
	case <-done:
	case <-time.After(time.Until(end)):
		for _, pid := range pids {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		<-done
	}
	// The leaders are reaped; what they started in their groups may still
	// be dying, ignore SIGTERM, or wait for whoever reaps orphans here.
	for _, pid := range pids {
		if !groupGone(pid, end) {
			syscall.Kill(-pid, syscall.SIGKILL)
			groupGone(pid, time.Now().Add(time.Second))
		}
	}
}

// groupGone waits until process group pgid has no process left, or until
// end, and says whether it is gone.
func groupGone(pgid int, end time.Time) bool {
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// lookPath finds file on the PATH of env (not of this process: the desktop
// user may have another).
func lookPath(file string, env []string) (string, error) {
	p, err := proc.LookPath(file, env)
	if err != nil {
		return "", &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "command",
			Message: err.Error() + "; install it in the template or give a full path"}
	}
	return p, nil
}
