package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Commands runs commands on the desktop, as the desktop user (or root),
// with the desktop's environment (DISPLAY included) and the user's home as
// the working directory. Get it as Sandbox.Commands.
type Commands struct {
	s *Sandbox
}

// NoTimeout as CommandOptions.Timeout lets a command run without a limit.
const NoTimeout time.Duration = -1

// CommandOptions shape a command. The zero value runs it as the desktop
// user, in its home, with the agent's default timeout (60 s).
type CommandOptions struct {
	// Env adds to (and overrides) the desktop environment.
	Env map[string]string
	// Cwd is the working directory: absolute, "~/..." or relative to the
	// home directory.
	Cwd string
	// User is "" or "user" for the desktop user, or "root".
	User string
	// Timeout kills the command (its whole process group) when it runs
	// longer; 0 is the agent's default of 60 s, NoTimeout is none.
	Timeout time.Duration
	// Stdin keeps the command's stdin open for SendStdin; without it stdin
	// is empty.
	Stdin bool
	// OnStdout and OnStderr get the output as it comes, in order. They run
	// on the goroutine that called Run or Wait and must not keep data.
	OnStdout func(data []byte)
	OnStderr func(data []byte)
}

// CommandResult is how a command ended and what it wrote.
type CommandResult struct {
	PID      int
	ExitCode int // -1 when a signal ended it
	Stdout   string
	Stderr   string
	// Error says why the command failed, when it did.
	Error string
	// Signal is the signal that ended it ("SIGKILL"), if one did.
	Signal string
	// TimedOut is set when its timeout killed it.
	TimedOut bool
	// Dropped is how many bytes of output were lost before the output
	// here: a command keeps its last 1 MiB for readers that were not
	// attached.
	Dropped int64
}

// CommandExitError is the error of a command that did not exit with 0: it
// ran, and Result says how it ended. A timeout is also of class
// ErrTimeout.
type CommandExitError struct {
	Result *CommandResult
}

func (e *CommandExitError) Error() string {
	r := e.Result
	var msg string
	switch {
	case r.TimedOut:
		msg = fmt.Sprintf("command %d: %s", r.PID, r.Error)
	case r.Signal != "":
		msg = fmt.Sprintf("command %d was killed by %s", r.PID, r.Signal)
	default:
		msg = fmt.Sprintf("command %d exited with code %d", r.PID, r.ExitCode)
	}
	if tail := lastLine(r.Stderr); tail != "" {
		msg += ": " + tail
	}
	return msg
}

// Is makes a timed-out command an error of class ErrTimeout.
func (e *CommandExitError) Is(target error) bool {
	return target == desktop.ErrTimeout && e.Result.TimedOut
}

// lastLine is the last non-empty line of s, cut to 200 bytes.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n\t ")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// commandRequest is the body of POST /v1/commands for cmd and opts.
func commandRequest(cmd apitype.CommandLine, background bool, opts []CommandOptions) (*apitype.CommandRequest, *CommandOptions, error) {
	var o CommandOptions
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
	default:
		return nil, nil, desktop.Errorf(desktop.CodeInvalid, "pass at most one CommandOptions, got %d", len(opts))
	}
	b := &apitype.CommandRequest{Cmd: &cmd, Env: o.Env, Cwd: o.Cwd, User: o.User, Background: background, Stdin: o.Stdin}
	switch {
	case o.Timeout == NoTimeout:
		b.TimeoutMS = new(int64)
	case o.Timeout < 0:
		return nil, nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "timeout", Index: -1,
			Message: fmt.Sprintf("timeout %s is negative; use NoTimeout for none", o.Timeout)}
	case o.Timeout > 0:
		ms := int64((o.Timeout + time.Millisecond - 1) / time.Millisecond)
		b.TimeoutMS = &ms
	}
	return b, &o, nil
}

// Run runs script with `bash -l -c` (the script is passed as one argument)
// and waits for it. A command that exits with another code than 0 gives
// its result and a *CommandExitError. When ctx ends first, the command is
// killed.
func (c *Commands) Run(ctx context.Context, script string, opts ...CommandOptions) (*CommandResult, error) {
	if script == "" {
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "cmd", Index: -1, Message: "the command is empty"}
	}
	return c.run(ctx, apitype.CommandLine{Script: script}, opts)
}

// RunArgv runs the program argv[0] with the arguments argv[1:], no shell
// involved, and waits for it; see Run.
func (c *Commands) RunArgv(ctx context.Context, argv []string, opts ...CommandOptions) (*CommandResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "cmd", Index: -1, Message: "the command is empty"}
	}
	return c.run(ctx, apitype.CommandLine{Argv: argv}, opts)
}

func (c *Commands) run(ctx context.Context, cmd apitype.CommandLine, opts []CommandOptions) (*CommandResult, error) {
	body, o, err := commandRequest(cmd, false, opts)
	if err != nil {
		return nil, err
	}
	const path = "/v1/commands"
	resp, err := c.s.t.send(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, c.s.t.statusError(http.MethodPost, path, resp)
	}
	res, err := c.readStream(ctx, http.MethodPost, path, resp.Body, o)
	if err != nil && res != nil && res.PID > 0 && ctx.Err() != nil {
		// The caller gave up: the command must not run on.
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		c.Kill(kctx, res.PID)
		cancel()
	}
	return res, err
}

// Start starts script with `bash -l -c` in the background and returns at
// once. The command runs on whether or not anyone waits for it.
func (c *Commands) Start(ctx context.Context, script string, opts ...CommandOptions) (*CommandHandle, error) {
	if script == "" {
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "cmd", Index: -1, Message: "the command is empty"}
	}
	return c.start(ctx, apitype.CommandLine{Script: script}, opts)
}

// StartArgv starts argv in the background, no shell involved; see Start.
func (c *Commands) StartArgv(ctx context.Context, argv []string, opts ...CommandOptions) (*CommandHandle, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, &desktop.Error{Code: desktop.CodeInvalid, Field: "cmd", Index: -1, Message: "the command is empty"}
	}
	return c.start(ctx, apitype.CommandLine{Argv: argv}, opts)
}

func (c *Commands) start(ctx context.Context, cmd apitype.CommandLine, opts []CommandOptions) (*CommandHandle, error) {
	body, o, err := commandRequest(cmd, true, opts)
	if err != nil {
		return nil, err
	}
	var out apitype.CommandStarted
	if err := c.s.t.call(ctx, http.MethodPost, "/v1/commands", nil, body, &out); err != nil {
		return nil, err
	}
	return &CommandHandle{PID: out.PID, c: c, opts: *o}, nil
}

// Connect returns a handle on the command with pid, started before; its
// OnStdout and OnStderr get what Wait reads. At most one CommandOptions is
// used, and only its callbacks.
func (c *Commands) Connect(pid int, opts ...CommandOptions) *CommandHandle {
	h := &CommandHandle{PID: pid, c: c}
	if len(opts) > 0 {
		h.opts.OnStdout, h.opts.OnStderr = opts[0].OnStdout, opts[0].OnStderr
	}
	return h
}

// CommandInfo describes a running command.
type CommandInfo = apitype.CommandInfo

// List returns the commands that are running.
func (c *Commands) List(ctx context.Context) ([]CommandInfo, error) {
	var list []CommandInfo
	if err := c.s.t.call(ctx, http.MethodGet, "/v1/commands", nil, nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// Kill kills the command with pid and its process group (SIGKILL).
func (c *Commands) Kill(ctx context.Context, pid int) error {
	return c.Signal(ctx, pid, "SIGKILL")
}

// Signal sends a signal ("SIGTERM", "INT", ...) to the command's process
// group. A command that has ended gives an error of class ErrNotFound.
func (c *Commands) Signal(ctx context.Context, pid int, signal string) error {
	return c.s.t.call(ctx, http.MethodPost, pidPath(pid, "/kill"), nil, apitype.SignalRequest{Signal: signal}, nil)
}

// SendStdin writes data to the stdin of a command started with Stdin set.
func (c *Commands) SendStdin(ctx context.Context, pid int, data []byte) error {
	return c.s.t.call(ctx, http.MethodPost, pidPath(pid, "/stdin"), nil, apitype.StdinRequest{Data: data}, nil)
}

// CloseStdin closes the stdin of a command started with Stdin set, so that
// it reads the end of its input.
func (c *Commands) CloseStdin(ctx context.Context, pid int) error {
	return c.s.t.call(ctx, http.MethodPost, pidPath(pid, "/stdin"), nil, apitype.StdinRequest{Close: true}, nil)
}

func pidPath(pid int, suffix string) string {
	return "/v1/commands/" + strconv.Itoa(pid) + suffix
}

// CommandHandle is a command running in the background.
type CommandHandle struct {
	// PID is the command's process id on the desktop.
	PID  int
	c    *Commands
	opts CommandOptions
}

// Wait streams the command's output to the callbacks given at Start and
// returns once it has ended, like Run. When ctx ends first, Wait returns
// and the command runs on.
func (h *CommandHandle) Wait(ctx context.Context) (*CommandResult, error) {
	return h.output(ctx, true, &h.opts)
}

// Output returns the output the command has kept so far, without waiting
// for more. Done tells whether it has ended; then the result is final.
func (h *CommandHandle) Output(ctx context.Context) (res *CommandResult, done bool, err error) {
	res, err = h.output(ctx, false, &CommandOptions{})
	var ee *CommandExitError
	switch {
	case errors.Is(err, errStillRunning):
		return res, false, nil
	case err == nil, errors.As(err, &ee):
		return res, true, nil
	}
	return res, false, err
}

var errStillRunning = errors.New("the command is still running")

func (h *CommandHandle) output(ctx context.Context, follow bool, o *CommandOptions) (*CommandResult, error) {
	path := pidPath(h.PID, "/output")
	q := url.Values{"follow": {strconv.FormatBool(follow)}}
	resp, err := h.c.s.t.send(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, h.c.s.t.statusError(http.MethodGet, path, resp)
	}
	res, err := h.c.readStream(ctx, http.MethodGet, path, resp.Body, o)
	if !follow && errors.Is(err, errStreamCut) && ctx.Err() == nil {
		return res, errStillRunning
	}
	return res, err
}

// Kill kills the command and its process group.
func (h *CommandHandle) Kill(ctx context.Context) error { return h.c.Kill(ctx, h.PID) }

// Signal sends a signal to the command's process group.
func (h *CommandHandle) Signal(ctx context.Context, signal string) error {
	return h.c.Signal(ctx, h.PID, signal)
}

// SendStdin writes data to the command's stdin.
func (h *CommandHandle) SendStdin(ctx context.Context, data []byte) error {
	return h.c.SendStdin(ctx, h.PID, data)
}

// CloseStdin closes the command's stdin.
func (h *CommandHandle) CloseStdin(ctx context.Context) error { return h.c.CloseStdin(ctx, h.PID) }

var errStreamCut = errors.New("the stream ended before the command did")

// readStream reads a command's event stream into a result, calling the
// callbacks of o on the way.
func (c *Commands) readStream(ctx context.Context, method, path string, body io.Reader, o *CommandOptions) (*CommandResult, error) {
	res := &CommandResult{}
	var stdout, stderr strings.Builder
	dec := json.NewDecoder(bufio.NewReaderSize(body, 64<<10))
	for {
		var ev apitype.CommandEvent
		if err := dec.Decode(&ev); err != nil {
			res.Stdout, res.Stderr = stdout.String(), stderr.String()
			if ctx.Err() != nil {
				return res, contextError("client: "+method+" "+path, ctx.Err())
			}
			if errors.Is(err, io.EOF) {
				return res, &callError{msg: fmt.Sprintf("client: %s %s%s: %v", method, c.s.t.base, path, errStreamCut),
					class: desktop.ErrUnavailable, cause: errStreamCut}
			}
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				return res, &desktop.Error{Code: desktop.CodeInternal, Index: -1,
					Message: fmt.Sprintf("client: %s %s%s: the command stream is not NDJSON: %v", method, c.s.t.base, path, err)}
			}
			return res, &callError{msg: fmt.Sprintf("client: %s %s%s: the command stream broke off: %v", method, c.s.t.base, path, err),
				class: desktop.ErrUnavailable, cause: err}
		}
		switch ev.Type {
		case apitype.EventStart:
			res.PID = ev.PID
		case apitype.EventStdout:
			stdout.Write(ev.Data)
			if o.OnStdout != nil {
				o.OnStdout(ev.Data)
			}
		case apitype.EventStderr:
			stderr.Write(ev.Data)
			if o.OnStderr != nil {
				o.OnStderr(ev.Data)
			}
		case apitype.EventDropped:
			res.Dropped += ev.Bytes
		case apitype.EventEnd:
			res.Stdout, res.Stderr = stdout.String(), stderr.String()
			if ev.CommandEnd == nil {
				return res, &desktop.Error{Code: desktop.CodeInternal, Index: -1,
					Message: fmt.Sprintf("client: %s %s%s: the end event of the command stream has no exit_code", method, c.s.t.base, path)}
			}
			res.ExitCode, res.Error, res.Signal, res.TimedOut = ev.ExitCode, ev.Error, ev.Signal, ev.TimedOut
			if res.ExitCode != 0 || res.Signal != "" || res.TimedOut {
				return res, &CommandExitError{Result: res}
			}
			return res, nil
		}
	}
}
