package clienttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Command is a command the fake agent was asked to run.
type Command struct {
	// Argv is the command; a script arrives as bash -l -c SCRIPT.
	Argv       []string
	Env        map[string]string
	Cwd        string
	User       string
	Background bool
	// TimeoutMS is the timeout asked for; nil is the default.
	TimeoutMS *int64
	// Stdin is what was written to the command's stdin before it was
	// closed, when the command was started with stdin.
	Stdin string
}

// CommandOutput is what a fake command writes and how it ends.
type CommandOutput struct {
	Stdout, Stderr string
	ExitCode       int
	Signal         string
	TimedOut       bool
	Error          string
}

// echo is the default play of a command: it prints its command line and
// what it read on stdin.
func echo(c Command) CommandOutput {
	line := strings.Join(c.Argv, " ")
	if len(c.Argv) == 4 && c.Argv[0] == "bash" && c.Argv[1] == "-l" && c.Argv[2] == "-c" {
		line = c.Argv[3]
	}
	return CommandOutput{Stdout: line + "\n" + c.Stdin}
}

// system is the imaginary processes and disk of the fake agent.
type system struct {
	run func(Command) CommandOutput
	now time.Time

	mu      sync.Mutex
	procs   map[int]*fakeProc
	nextPID int
	files   map[string]*fakeFile // by cleaned absolute path; "/" is there
}

// fakeProc is one imaginary command. It "runs" when it starts, or, when it
// reads stdin, when its stdin is closed; a kill ends it first.
type fakeProc struct {
	pid   int
	cmd   Command
	stdin bool // started with stdin and it is still open
	done  chan struct{}
	out   CommandOutput
	start time.Time
}

func newSystem(o Options) *system {
	s := &system{run: o.RunCommand, procs: map[int]*fakeProc{}, nextPID: 4000,
		files: map[string]*fakeFile{"/": {dir: true}}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if s.run == nil {
		s.run = echo
	}
	for p, data := range o.Files {
		s.putLocked(path.Clean(p), data)
	}
	return s
}

func (s *system) routes(m *http.ServeMux) {
	m.HandleFunc("POST /v1/commands", s.handleStart)
	m.HandleFunc("GET /v1/commands", s.handleCommands)
	m.HandleFunc("GET /v1/commands/{pid}/output", s.handleOutput)
	m.HandleFunc("POST /v1/commands/{pid}/stdin", s.handleStdin)
	m.HandleFunc("POST /v1/commands/{pid}/kill", s.handleKill)
	m.HandleFunc("GET /v1/files", s.handleRead)
	m.HandleFunc("PUT /v1/files", s.handleWrite)
	m.HandleFunc("DELETE /v1/files", s.handleRemove)
	m.HandleFunc("GET /v1/files/list", s.handleListDir)
	m.HandleFunc("GET /v1/files/stat", s.handleStat)
	m.HandleFunc("POST /v1/files/mkdir", s.handleMkdir)
}

// finish ends p with out, once.
func (s *system) finishLocked(p *fakeProc, out CommandOutput) {
	select {
	case <-p.done:
		return
	default:
	}
	p.out = out
	close(p.done)
}

func (s *system) handleStart(w http.ResponseWriter, r *http.Request) {
	var req apitype.CommandRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var argv []string
	if req.Cmd != nil && req.Cmd.Script != "" {
		argv = []string{"bash", "-l", "-c", req.Cmd.Script}
	} else if req.Cmd != nil {
		argv = req.Cmd.Argv
	}
	if len(argv) == 0 || argv[0] == "" {
		writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "cmd",
			Message: `"cmd" must be a script string or a non-empty argv array`})
		return
	}
	if req.User != "" && req.User != "user" && req.User != "root" {
		writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "user", Message: fmt.Sprintf("unknown user %q", req.User)})
		return
	}
	if req.TimeoutMS != nil && *req.TimeoutMS < 0 {
		writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "timeout_ms", Message: "timeout_ms is negative"})
		return
	}
	cmd := Command{Argv: argv, Env: req.Env, Cwd: req.Cwd, User: req.User, Background: req.Background, TimeoutMS: req.TimeoutMS}
	s.mu.Lock()
	s.nextPID++
	p := &fakeProc{pid: s.nextPID, cmd: cmd, stdin: req.Stdin, done: make(chan struct{}), start: s.now}
	s.procs[p.pid] = p
	if !p.stdin {
		s.finishLocked(p, s.run(cmd))
	}
	s.mu.Unlock()
	if req.Background {
		writeJSON(w, http.StatusOK, apitype.CommandStarted{PID: p.pid})
		return
	}
	s.stream(w, r, p, true)
}

// stream writes p's start, then, once it has ended (or at once without
// follow), its output and end.
func (s *system) stream(w http.ResponseWriter, r *http.Request, p *fakeProc, follow bool) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() { http.NewResponseController(w).Flush() }
	enc.Encode(apitype.CommandEvent{Type: apitype.EventStart, PID: p.pid})
	flush()
	if follow {
		select {
		case <-p.done:
		case <-r.Context().Done():
			return
		}
	}
	select {
	case <-p.done:
	default:
		return
	}
	if p.out.Stdout != "" {
		enc.Encode(apitype.CommandEvent{Type: apitype.EventStdout, Data: []byte(p.out.Stdout)})
	}
	if p.out.Stderr != "" {
		enc.Encode(apitype.CommandEvent{Type: apitype.EventStderr, Data: []byte(p.out.Stderr)})
	}
	enc.Encode(apitype.CommandEvent{Type: apitype.EventEnd, CommandEnd: &apitype.CommandEnd{
		ExitCode: p.out.ExitCode, Error: p.out.Error, Signal: p.out.Signal, TimedOut: p.out.TimedOut}})
	flush()
}

func (s *system) lookup(w http.ResponseWriter, r *http.Request) *fakeProc {
	pid, err := strconv.Atoi(r.PathValue("pid"))
	s.mu.Lock()
	p := s.procs[pid]
	s.mu.Unlock()
	if err != nil || p == nil {
		writeError(w, &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "pid", Message: fmt.Sprintf("no command with pid %s", r.PathValue("pid"))})
		return nil
	}
	return p
}

func ended(p *fakeProc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (s *system) handleCommands(w http.ResponseWriter, r *http.Request) {
	list := []apitype.CommandInfo{}
	s.mu.Lock()
	for _, p := range s.procs {
		if !ended(p) {
			list = append(list, apitype.CommandInfo{PID: p.pid, Cmd: p.cmd.Argv, Background: p.cmd.Background,
				User: cmp(p.cmd.User, "user"), Cwd: cmp(p.cmd.Cwd, "/home/user"), Stdin: p.stdin, StartedAt: p.start})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b apitype.CommandInfo) int { return a.PID - b.PID })
	writeJSON(w, http.StatusOK, list)
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s *system) handleOutput(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r, "follow"); err != nil {
		writeError(w, err)
		return
	}
	p := s.lookup(w, r)
	if p == nil {
		return
	}
	s.stream(w, r, p, r.URL.Query().Get("follow") == "true")
}

func (s *system) handleStdin(w http.ResponseWriter, r *http.Request) {
	p := s.lookup(w, r)
	if p == nil {
		return
	}
	var body apitype.StdinRequest
	if err := decodeBody(r, &body); err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !p.stdin || ended(p) {
		writeError(w, desktop.Errorf(desktop.CodeConflict, "command %d has no open stdin", p.pid))
		return
	}
	p.cmd.Stdin += string(body.Data)
	if body.Close {
		p.stdin = false
		s.finishLocked(p, s.run(p.cmd))
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *system) handleKill(w http.ResponseWriter, r *http.Request) {
	p := s.lookup(w, r)
	if p == nil {
		return
	}
	var body apitype.SignalRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &body); err != nil {
			writeError(w, err)
			return
		}
	}
	sig := strings.ToUpper(cmp(body.Signal, "SIGKILL"))
	if !strings.HasPrefix(sig, "SIG") {
		sig = "SIG" + sig
	}
	switch sig {
	case "SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2":
	default:
		writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "signal", Message: fmt.Sprintf("unknown signal %q", body.Signal)})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ended(p) {
		writeError(w, &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "pid", Message: fmt.Sprintf("command %d has already ended", p.pid)})
		return
	}
	p.stdin = false
	s.finishLocked(p, CommandOutput{ExitCode: -1, Signal: sig, Error: "signal: " + strings.ToLower(strings.TrimPrefix(sig, "SIG"))})
	w.WriteHeader(http.StatusNoContent)
}
