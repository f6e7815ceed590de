package envd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	pb "github.com/cubicle-dev/cubicle/internal/envd/spec/process"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/process/processconnect"
	"github.com/cubicle-dev/cubicle/internal/proc"
)

// Limits and defaults of the process service.
const (
	maxRunning = 256
	// keepEnded is how long an ended process answers Connect with its end.
	keepEnded = 30 * time.Second
	// defaultKeepalive is the keepalive interval of a stream whose client
	// sent no Keepalive-Ping-Interval.
	defaultKeepalive = 90 * time.Second
)

var _ processconnect.ProcessHandler = (*processes)(nil)

// processes is the process service: the table of the processes it started.
type processes struct {
	s   *Service
	log *slog.Logger

	mu     sync.Mutex
	byPID  map[uint32]*process
	closed bool
	wg     sync.WaitGroup
}

// process is one started process.
type process struct {
	*proc.Proc
	pid    uint32
	tag    *string
	config *pb.ProcessConfig
}

func newProcesses(s *Service) *processes {
	return &processes{s: s, log: s.log, byPID: map[uint32]*process{}}
}

// close kills every process still running and waits until all ended.
func (ps *processes) close() {
	ps.mu.Lock()
	ps.closed = true
	for _, p := range ps.byPID {
		p.Kill(false)
	}
	ps.mu.Unlock()
	ps.wg.Wait()
}

func (ps *processes) Start(ctx context.Context, req *connect.Request[pb.StartRequest], stream *connect.ServerStream[pb.StartResponse]) error {
	u, err := ps.s.rpcUser(req.Header())
	if err != nil {
		return err
	}
	timeout, err := headerTimeout(req.Header().Get("Connect-Timeout-Ms"))
	if err != nil {
		return err
	}
	p, rd, err := ps.start(req.Msg, u, timeout)
	if err != nil {
		return err
	}
	defer p.Detach(rd)
	send := func(ev *pb.ProcessEvent) error { return stream.Send(&pb.StartResponse{Event: ev}) }
	return ps.stream(ctx, p, rd, send, keepaliveInterval(req.Header().Get("Keepalive-Ping-Interval")))
}

// start starts the process of req as u and registers it; the returned
// reader is attached from its first output on.
func (ps *processes) start(req *pb.StartRequest, u *User, timeout time.Duration) (*process, *proc.Reader, error) {
	cfg := req.GetProcess()
	if cfg == nil || cfg.GetCmd() == "" {
		return nil, nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process.cmd is required"))
	}
	argv := append([]string{cfg.GetCmd()}, cfg.GetArgs()...)
	for _, s := range argv {
		if strings.ContainsRune(s, 0) {
			return nil, nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the command contains a NUL byte"))
		}
	}
	set := map[string]string{"HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name}
	for k, v := range cfg.GetEnvs() {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("invalid environment variable %q", k))
		}
		set[k] = v
	}
	env := append(mergeEnv(ps.s.env(), set), ps.s.tag)
	dir, err := ps.workDir(cfg.Cwd, u)
	if err != nil {
		return nil, nil, err
	}
	path, err := findProgram(argv[0], env)
	if err != nil {
		return nil, nil, err
	}
	opts := proc.Options{
		Path: path, Args: argv, Env: env, Dir: dir, SysProcAttr: u.SysProcAttr,
		Stdin: req.Stdin == nil || req.GetStdin(), Start: ps.s.cfg.StartProcess,
	}
	if req.Pty != nil {
		size := req.GetPty().GetSize()
		opts.Terminal = &proc.Size{Cols: clampSize(size.GetCols(), 80), Rows: clampSize(size.GetRows(), 24)}
	}

	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil, nil, connect.NewError(connect.CodeUnavailable, errors.New("the sandbox is shutting down"))
	}
	ps.pruneLocked(time.Now())
	running := 0
	for _, p := range ps.byPID {
		if ended, _, _ := p.State(); !ended {
			running++
		}
	}
	if running >= maxRunning {
		return nil, nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%d processes are running, the most at once", running))
	}
	pr, err := proc.Start(opts)
	if err != nil {
		return nil, nil, startError(argv[0], dir, err)
	}
	p := &process{Proc: pr, pid: uint32(pr.Pid()), tag: req.Tag, config: proto.CloneOf(cfg)}
	p.config.Cwd = &dir
	rd := p.Attach(false)
	ps.byPID[p.pid] = p
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		p.Run(timeout)
		end := p.Next(proc.NewReader()).End
		ps.log.Debug("process ended", "pid", p.pid, "status", end.Status)
	}()
	ps.log.Debug("process started", "pid", p.pid, "program", argv[0], "user", u.Name, "pty", opts.Terminal != nil, "timeout_ms", timeout.Milliseconds())
	return p, rd, nil
}

// clampSize is a terminal dimension, def when zero.
func clampSize(n uint32, def uint16) uint16 {
	switch {
	case n == 0:
		return def
	case n > 10000:
		return 10000
	}
	return uint16(n)
}

// workDir resolves the cwd of a request: "~" expanded, relative paths from
// the home; empty is the default workdir (POST /init), else the home.
func (ps *processes) workDir(cwd *string, u *User) (string, error) {
	d := ""
	if cwd != nil {
		d = *cwd
	}
	if d == "" {
		ps.s.mu.Lock()
		d = ps.s.defaultDir
		ps.s.mu.Unlock()
	}
	if d == "" {
		d = u.Home
	}
	dir := resolvePath(d, u.Home)
	var st os.FileInfo
	err := u.do(func() (err error) { st, err = os.Stat(dir); return err })
	if err != nil || !st.IsDir() {
		return "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("cwd '%s' does not exist", dir))
	}
	return dir, nil
}

// startError classifies the failure to start program in dir.
func startError(program, dir string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("cannot run %s: %w", program, err))
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOEXEC):
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("cannot run %s in %s: %w", program, dir, err))
	}
	return connect.NewError(connect.CodeInternal, fmt.Errorf("start %s: %w", program, err))
}

// findProgram finds name on the PATH of env.
func findProgram(name string, env []string) (string, error) {
	p, err := proc.LookPath(name, env)
	if err != nil {
		return "", connect.NewError(connect.CodeNotFound, err)
	}
	return p, nil
}

// headerTimeout reads Connect-Timeout-Ms: the process is killed when it
// runs longer. Empty means no limit.
func headerTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 || len(s) > 10 {
		return 0, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("Connect-Timeout-Ms %q is not a number of milliseconds", s))
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// keepaliveInterval reads Keepalive-Ping-Interval (seconds).
func keepaliveInterval(s string) time.Duration {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return defaultKeepalive
	}
	return time.Duration(n) * time.Second
}

// stream sends the events of p from rd's position: data and keepalives,
// then the end. It returns when the process has ended and its output is
// sent, or when the client goes away; the process runs on.
func (ps *processes) stream(ctx context.Context, p *process, rd *proc.Reader, send func(*pb.ProcessEvent) error, keepalive time.Duration) error {
	if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Start{Start: &pb.ProcessEvent_StartEvent{Pid: p.pid}}}); err != nil {
		return err
	}
	timer := time.NewTimer(keepalive)
	defer timer.Stop()
	for {
		b := p.Next(rd)
		for _, c := range b.Chunks {
			if err := send(dataEvent(c)); err != nil {
				return err
			}
		}
		if len(b.Chunks) > 0 {
			timer.Reset(keepalive)
			continue
		}
		if b.Ended {
			if b.End.TimedOut {
				return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the process ran past its timeout and was killed"))
			}
			return send(endEvent(b.End))
		}
		select {
		case <-b.Changed:
		case <-timer.C:
			if err := send(&pb.ProcessEvent{Event: &pb.ProcessEvent_Keepalive{Keepalive: &pb.ProcessEvent_KeepAlive{}}}); err != nil {
				return err
			}
			timer.Reset(keepalive)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return connect.NewError(connect.CodeDeadlineExceeded, errors.New("the process ran past its timeout and was killed"))
			}
			return connect.NewError(connect.CodeCanceled, ctx.Err())
		}
	}
}

func dataEvent(c proc.Chunk) *pb.ProcessEvent {
	d := &pb.ProcessEvent_DataEvent{}
	switch c.Stream {
	case proc.Stdout:
		d.Output = &pb.ProcessEvent_DataEvent_Stdout{Stdout: c.Data}
	case proc.Stderr:
		d.Output = &pb.ProcessEvent_DataEvent_Stderr{Stderr: c.Data}
	default:
		d.Output = &pb.ProcessEvent_DataEvent_Pty{Pty: c.Data}
	}
	return &pb.ProcessEvent{Event: &pb.ProcessEvent_Data{Data: d}}
}

func endEvent(e proc.End) *pb.ProcessEvent {
	end := &pb.ProcessEvent_EndEvent{ExitCode: int32(e.ExitCode), Exited: e.Exited, Status: e.Status}
	if e.Error != "" {
		end.Error = &e.Error
	}
	return &pb.ProcessEvent{Event: &pb.ProcessEvent_End{End: end}}
}

func (ps *processes) Connect(ctx context.Context, req *connect.Request[pb.ConnectRequest], stream *connect.ServerStream[pb.ConnectResponse]) error {
	p, err := ps.lookup(req.Msg.GetProcess(), true)
	if err != nil {
		return err
	}
	rd := p.Attach(true)
	defer p.Detach(rd)
	send := func(ev *pb.ProcessEvent) error { return stream.Send(&pb.ConnectResponse{Event: ev}) }
	return ps.stream(ctx, p, rd, send, keepaliveInterval(req.Header().Get("Keepalive-Ping-Interval")))
}

// pruneLocked forgets the processes that ended more than keepEnded ago.
func (ps *processes) pruneLocked(now time.Time) {
	for pid, p := range ps.byPID {
		if ended, at, _ := p.State(); ended && now.Sub(at) > keepEnded {
			delete(ps.byPID, pid)
		}
	}
}

// lookup finds the process sel names; an ended one only when withEnded.
func (ps *processes) lookup(sel *pb.ProcessSelector, withEnded bool) (*process, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.pruneLocked(time.Now())
	var found *process
	switch s := sel.GetSelector().(type) {
	case *pb.ProcessSelector_Pid:
		found = ps.byPID[s.Pid]
		if found != nil && !withEnded {
			if ended, _, _ := found.State(); ended {
				found = nil
			}
		}
		if found == nil {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with pid %d not found", s.Pid))
		}
	case *pb.ProcessSelector_Tag:
		for _, p := range ps.byPID {
			if p.tag == nil || *p.tag != s.Tag {
				continue
			}
			if ended, _, _ := p.State(); ended && !withEnded {
				continue
			}
			if found == nil || p.pid < found.pid {
				found = p
			}
		}
		if found == nil {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process with tag %q not found", s.Tag))
		}
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("process selector needs a pid or a tag"))
	}
	return found, nil
}

func (ps *processes) List(ctx context.Context, req *connect.Request[pb.ListRequest]) (*connect.Response[pb.ListResponse], error) {
	ps.mu.Lock()
	var list []*pb.ProcessInfo
	for _, p := range ps.byPID {
		if ended, _, _ := p.State(); !ended {
			list = append(list, &pb.ProcessInfo{Config: p.config, Pid: p.pid, Tag: p.tag})
		}
	}
	ps.mu.Unlock()
	slices.SortFunc(list, func(a, b *pb.ProcessInfo) int { return cmp.Compare(a.Pid, b.Pid) })
	return connect.NewResponse(&pb.ListResponse{Processes: list}), nil
}

func (ps *processes) SendInput(ctx context.Context, req *connect.Request[pb.SendInputRequest]) (*connect.Response[pb.SendInputResponse], error) {
	p, err := ps.lookup(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, err
	}
	if err := writeInput(ctx, p, req.Msg.GetInput()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.SendInputResponse{}), nil
}

// writeInput writes in to p's stdin or terminal.
func writeInput(ctx context.Context, p *process, in *pb.ProcessInput) error {
	var data []byte
	switch v := in.GetInput().(type) {
	case *pb.ProcessInput_Stdin:
		data = v.Stdin
	case *pb.ProcessInput_Pty:
		if !p.HasTerminal() {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d has no terminal; send stdin", p.pid))
		}
		data = v.Pty
	default:
		return connect.NewError(connect.CodeInvalidArgument, errors.New("input needs stdin or pty"))
	}
	err := p.WriteStdin(ctx, data, false)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, proc.ErrNoStdin):
		return connect.NewError(connect.CodeInternal, fmt.Errorf("process %d was started without stdin", p.pid))
	case errors.Is(err, proc.ErrStdinClosed):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the stdin of process %d is closed", p.pid))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("process %d does not read its input", p.pid))
	}
	return connect.NewError(connect.CodeInternal, err)
}

func (ps *processes) StreamInput(ctx context.Context, stream *connect.ClientStream[pb.StreamInputRequest]) (*connect.Response[pb.StreamInputResponse], error) {
	var p *process
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *pb.StreamInputRequest_Start:
			found, err := ps.lookup(ev.Start.GetProcess(), false)
			if err != nil {
				return nil, err
			}
			p = found
		case *pb.StreamInputRequest_Data:
			if p == nil {
				return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("send start before data"))
			}
			if err := writeInput(ctx, p, ev.Data.GetInput()); err != nil {
				return nil, err
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.StreamInputResponse{}), nil
}

func (ps *processes) SendSignal(ctx context.Context, req *connect.Request[pb.SendSignalRequest]) (*connect.Response[pb.SendSignalResponse], error) {
	var sig syscall.Signal
	switch req.Msg.GetSignal() {
	case pb.Signal_SIGNAL_SIGKILL:
		sig = unix.SIGKILL
	case pb.Signal_SIGNAL_SIGTERM:
		sig = unix.SIGTERM
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("unsupported signal %v", req.Msg.GetSignal()))
	}
	p, err := ps.lookup(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, err
	}
	if err := p.Signal(sig); err != nil {
		if errors.Is(err, proc.ErrEnded) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("process %d has ended", p.pid))
		}
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return connect.NewResponse(&pb.SendSignalResponse{}), nil
}

func (ps *processes) Update(ctx context.Context, req *connect.Request[pb.UpdateRequest]) (*connect.Response[pb.UpdateResponse], error) {
	p, err := ps.lookup(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, err
	}
	if req.Msg.Pty != nil {
		size := req.Msg.GetPty().GetSize()
		err := p.Resize(proc.Size{Cols: clampSize(size.GetCols(), 80), Rows: clampSize(size.GetRows(), 24)})
		if errors.Is(err, proc.ErrNoTerminal) {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d has no terminal", p.pid))
		}
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
	}
	return connect.NewResponse(&pb.UpdateResponse{}), nil
}

func (ps *processes) CloseStdin(ctx context.Context, req *connect.Request[pb.CloseStdinRequest]) (*connect.Response[pb.CloseStdinResponse], error) {
	p, err := ps.lookup(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, err
	}
	if p.HasTerminal() {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("process %d has a terminal: send ^D (0x04) instead", p.pid))
	}
	p.CloseStdin()
	return connect.NewResponse(&pb.CloseStdinResponse{}), nil
}
