package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/proc"
)

// Limits of the command API.
const (
	defaultCommandTimeout = 60 * time.Second
	maxCommandTimeout     = 24 * time.Hour
	maxRunningCommands    = 256
	// Ended commands stay listed for their output and end for keepEnded,
	// at most keepEndedCount of them and keepEndedBytes of their output.
	keepEnded      = 5 * time.Minute
	keepEndedCount = 100
	keepEndedBytes = 32 << 20
)

// commandRoutes adds the command and file API to the agent's routes.
//
// A command runs as argv, or as a script given to `bash -l -c` as one
// argument, never spliced into a shell string. It runs as the desktop user
// (or root) with the desktop environment, in a process group of its own.
// Its output is read all the time and kept, up to outputCap, so a command
// never blocks on a full pipe; a client attached to its stream holds it
// back instead of losing output. A client that goes away only stops
// streaming: the command runs on until it ends or its timeout kills it,
// and its output and end can be fetched again by pid.
func (a *Agent) commandRoutes(handle func(pattern string, h handlerFunc)) {
	c := a.cmds
	handle("POST /v1/commands", c.handleStart)
	handle("GET /v1/commands", c.handleList)
	handle("GET /v1/commands/{pid}/output", c.handleOutput)
	handle("POST /v1/commands/{pid}/stdin", c.handleStdin)
	handle("POST /v1/commands/{pid}/kill", c.handleKill)
	a.fileRoutes(handle)
}

func newCommands(a *Agent) *commands {
	return &commands{a: a, log: a.log.With("component", "commands"), procs: map[int]*command{}}
}

// commands is the table of the commands the agent started.
type commands struct {
	a   *Agent
	log *slog.Logger

	mu    sync.Mutex
	procs map[int]*command
	wg    sync.WaitGroup
}

func invalidField(field, format string, args ...any) *desktop.Error {
	return &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}
}

// validateCommand checks a request and returns its argv and timeout.
func validateCommand(req *apitype.CommandRequest) ([]string, time.Duration, error) {
	if req.Cmd == nil {
		return nil, 0, invalidField("cmd", `body needs "cmd": a script string or an argv array`)
	}
	argv := req.Cmd.Argv
	if req.Cmd.Script != "" {
		argv = []string{"bash", "-l", "-c", req.Cmd.Script}
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, 0, invalidField("cmd", `"cmd" is empty; give a script string or an argv array`)
	}
	for _, s := range argv {
		if strings.ContainsRune(s, 0) {
			return nil, 0, invalidField("cmd", `"cmd" contains a NUL byte`)
		}
	}
	for k, v := range req.Env {
		if !validEnvName(k) {
			return nil, 0, invalidField("env", "environment variable name %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, 0, invalidField("env", "the value of %s contains a NUL byte", k)
		}
	}
	if strings.ContainsRune(req.Cwd, 0) {
		return nil, 0, invalidField("cwd", `"cwd" contains a NUL byte`)
	}
	timeout := defaultCommandTimeout
	if t := req.TimeoutMS; t != nil {
		if *t < 0 || time.Duration(*t)*time.Millisecond > maxCommandTimeout {
			return nil, 0, invalidField("timeout_ms", "timeout_ms %d must be from 0 (no limit) to %d", *t, maxCommandTimeout.Milliseconds())
		}
		timeout = time.Duration(*t) * time.Millisecond
	}
	return argv, timeout, nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func (c *commands) handleStart(w http.ResponseWriter, r *http.Request) error {
	var req apitype.CommandRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	argv, timeout, err := validateCommand(&req)
	if err != nil {
		return err
	}
	acct, err := c.a.account(req.User)
	if err != nil {
		return err
	}
	p, err := c.start(argv, &req, acct, timeout)
	if err != nil {
		return err
	}
	c.log.Info("command started", "pid", p.pid, "program", argv[0], "user", acct.name, "background", req.Background)
	if req.Background {
		return writeJSON(w, http.StatusOK, apitype.CommandStarted{PID: p.pid})
	}
	ew := newEventWriter(w)
	if err := ew.write(apitype.CommandEvent{Type: apitype.EventStart, PID: p.pid}); err != nil {
		return nil
	}
	streamOutput(r, p, ew, true)
	return nil
}

// commandEnv is the environment of a command: the desktop's, the account's
// identity when the agent switches to it, then the request's.
func (c *commands) commandEnv(acct *account, extra map[string]string) []string {
	env := c.a.desktopEnv()
	set := map[string]string{}
	if acct.home != "" {
		set["HOME"], set["USER"], set["LOGNAME"] = acct.home, acct.name, acct.name
	}
	for k, v := range extra {
		set[k] = v
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			out = append(out, kv)
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, k+"="+set[k])
	}
	return out
}

// desktopEnv is the environment of the desktop's programs: the
// supervisor's when the agent runs the display, else the agent's own with
// DISPLAY set.
func (a *Agent) desktopEnv() []string {
	if a.sup != nil {
		return a.sup.Env()
	}
	return attachedEnv(a.cfg.Display.Display)
}

// workDir resolves the cwd of a request: the account's home when empty,
// "~" expanded, relative paths from the home. It must be a directory.
func workDir(cwd, home string) (string, error) {
	switch {
	case cwd == "" || cwd == "~":
		cwd = home
	case strings.HasPrefix(cwd, "~/"):
		cwd = filepath.Join(home, cwd[2:])
	case !filepath.IsAbs(cwd):
		cwd = filepath.Join(home, cwd)
	}
	cwd = filepath.Clean(cwd)
	st, err := os.Stat(cwd)
	if err != nil || !st.IsDir() {
		return "", invalidField("cwd", "cwd %q is not an existing directory", cwd)
	}
	return cwd, nil
}

// start starts a command and registers it.
func (c *commands) start(argv []string, req *apitype.CommandRequest, acct *account, timeout time.Duration) (*command, error) {
	env := c.commandEnv(acct, req.Env)
	dir, err := workDir(req.Cwd, acct.homeIn(env))
	if err != nil {
		return nil, err
	}
	path, err := findProgram(argv[0], env)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	running := 0
	for _, p := range c.procs {
		if ended, _, _ := p.State(); !ended {
			running++
		}
	}
	c.mu.Unlock()
	if running >= maxRunningCommands {
		return nil, desktop.Errorf(desktop.CodeUnavailable, "%d commands are running, the most the agent runs at once; wait for some to end or kill them", running)
	}

	pr, err := proc.Start(proc.Options{
		Path: path, Args: argv, Env: env, Dir: dir, SysProcAttr: acct.sysProcAttr(),
		Stdin: req.Stdin, Start: c.a.cfg.StartProcess,
	})
	if err != nil {
		return nil, startError(argv[0], dir, err)
	}
	info := apitype.CommandInfo{PID: pr.Pid(), Cmd: argv, Background: req.Background, User: acct.name, Cwd: dir, Stdin: req.Stdin, StartedAt: time.Now().UTC()}
	p := &command{Proc: pr, pid: pr.Pid(), info: info, timeout: timeout}

	c.mu.Lock()
	c.pruneLocked(time.Now())
	c.procs[p.pid] = p
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		p.Run(timeout)
		end := p.Next(proc.NewReader()).End
		c.log.Info("command ended", "pid", p.pid, "exit_code", end.ExitCode, "error", end.Error)
	}()
	return p, nil
}

// startError classifies the failure to start program in dir.
func startError(program, dir string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "cmd", Message: fmt.Sprintf("cannot run %s: %v", program, err)}
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return invalidField("cmd", "cannot run %s in %s: %v (may the user run it and enter the directory?)", program, dir, err)
	case errors.Is(err, unix.ENOEXEC):
		return invalidField("cmd", "cannot run %s: %v", program, err)
	}
	return fmt.Errorf("agent: start %s: %w", program, err)
}

// findProgram finds name on the PATH of env, not of the agent: the desktop
// user may have another.
func findProgram(name string, env []string) (string, error) {
	p, err := proc.LookPath(name, env)
	if err != nil {
		return "", &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "cmd",
			Message: err.Error() + "; give a full path, or a script string to run it with bash"}
	}
	return p, nil
}

// pruneLocked forgets ended commands past keepEnded, and the oldest ended
// ones beyond keepEndedCount or keepEndedBytes of output.
func (c *commands) pruneLocked(now time.Time) {
	type ended struct {
		pid  int
		at   time.Time
		kept int64
	}
	var list []ended
	for pid, p := range c.procs {
		done, at, kept := p.State()
		if !done {
			continue
		}
		if now.Sub(at) > keepEnded {
			delete(c.procs, pid)
			continue
		}
		list = append(list, ended{pid, at, kept})
	}
	slices.SortFunc(list, func(a, b ended) int { return b.at.Compare(a.at) }) // newest first
	var bytes int64
	for i, e := range list {
		bytes += e.kept
		if i >= keepEndedCount || bytes > keepEndedBytes {
			delete(c.procs, e.pid)
		}
	}
}

// close kills the commands still running and waits until they have ended.
func (c *commands) close() {
	c.mu.Lock()
	for _, p := range c.procs {
		p.Kill(false)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// lookup returns the command with the pid in the request's path.
func (c *commands) lookup(r *http.Request) (*command, error) {
	s := r.PathValue("pid")
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return nil, invalidField("pid", "pid %q is not a positive number", s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneLocked(time.Now())
	p := c.procs[pid]
	if p == nil {
		return nil, &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "pid",
			Message: fmt.Sprintf("no command with pid %d; commands are kept for %s after they end", pid, keepEnded)}
	}
	return p, nil
}

func (c *commands) handleList(w http.ResponseWriter, r *http.Request) error {
	c.mu.Lock()
	list := []apitype.CommandInfo{}
	for _, p := range c.procs {
		if ended, _, _ := p.State(); !ended {
			list = append(list, p.info)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(list, func(a, b apitype.CommandInfo) int { return a.PID - b.PID })
	return writeJSON(w, http.StatusOK, list)
}

func (c *commands) handleOutput(w http.ResponseWriter, r *http.Request) error {
	p, err := c.lookup(r)
	if err != nil {
		return err
	}
	follow := false
	if s := r.URL.Query().Get("follow"); s != "" {
		if follow, err = strconv.ParseBool(s); err != nil {
			return invalidField("follow", "follow=%q must be true or false", s)
		}
	}
	ew := newEventWriter(w)
	if err := ew.write(apitype.CommandEvent{Type: apitype.EventStart, PID: p.pid}); err != nil {
		return nil
	}
	streamOutput(r, p, ew, follow)
	return nil
}

func (c *commands) handleStdin(w http.ResponseWriter, r *http.Request) error {
	p, err := c.lookup(r)
	if err != nil {
		return err
	}
	var body apitype.StdinRequest
	if err := decode(w, r, &body); err != nil {
		return err
	}
	switch err := p.WriteStdin(r.Context(), body.Data, body.Close); {
	case errors.Is(err, proc.ErrNoStdin):
		return desktop.Errorf(desktop.CodeConflict, "command %d was started without stdin; start it with \"stdin\": true", p.pid)
	case errors.Is(err, proc.ErrStdinClosed):
		return desktop.Errorf(desktop.CodeConflict, "the stdin of command %d is closed", p.pid)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return desktop.Errorf(desktop.CodeTimeout, "command %d does not read its stdin", p.pid)
	case errors.Is(err, unix.EPIPE):
		return desktop.Errorf(desktop.CodeConflict, "command %d closed its stdin or ended", p.pid)
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *commands) handleKill(w http.ResponseWriter, r *http.Request) error {
	p, err := c.lookup(r)
	if err != nil {
		return err
	}
	var body apitype.SignalRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &body); err != nil {
			return err
		}
	}
	sig, err := parseSignal(body.Signal)
	if err != nil {
		return err
	}
	if err := p.Signal(sig); err != nil {
		if errors.Is(err, proc.ErrEnded) {
			return &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "pid",
				Message: fmt.Sprintf("command %d has already ended", p.pid)}
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// parseSignal reads a signal name (SIGTERM, TERM, term) or number; empty
// is SIGKILL.
func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return unix.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, invalidField("signal", "signal %d is out of range 1-64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, invalidField("signal", "unknown signal %q; use a name such as SIGTERM, SIGKILL, SIGINT or SIGHUP", s)
}

// eventWriter writes NDJSON events, each flushed as it is written.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	return &eventWriter{w: w, rc: http.NewResponseController(w)}
}

func (ew *eventWriter) write(ev apitype.CommandEvent) error {
	if !ew.started {
		ew.started = true
		ew.w.Header().Set("Content-Type", "application/x-ndjson")
		ew.w.Header().Set("Cache-Control", "no-store")
		ew.w.WriteHeader(http.StatusOK)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := ew.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return ew.rc.Flush()
}

// streamOutput writes the output of p after the reader's position, then
// (with follow) what comes until the end, and the end event once the
// command has ended. It returns when the client goes away; the command
// runs on.
func streamOutput(r *http.Request, p *command, ew *eventWriter, follow bool) {
	rd := proc.NewReader()
	if follow {
		rd = p.Attach(false)
		defer p.Detach(rd)
	}
	for {
		b := p.Next(rd)
		if b.Dropped > 0 {
			if ew.write(apitype.CommandEvent{Type: apitype.EventDropped, Bytes: b.Dropped}) != nil {
				return
			}
		}
		for _, ch := range b.Chunks {
			if ew.write(apitype.CommandEvent{Type: string(ch.Stream), Data: ch.Data}) != nil {
				return
			}
		}
		if b.Ended {
			end := p.endOf(b.End)
			ew.write(apitype.CommandEvent{Type: apitype.EventEnd, CommandEnd: &end})
			return
		}
		if len(b.Chunks) > 0 || b.Dropped > 0 {
			continue
		}
		if !follow {
			return
		}
		select {
		case <-b.Changed:
		case <-r.Context().Done():
			return
		}
	}
}
