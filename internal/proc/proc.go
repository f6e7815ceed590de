// Package proc runs one command as a child process whose output is read
// all the time and kept, up to OutputCap, so that the command never blocks
// on a full pipe. Readers attached to its output hold it back instead of
// losing output; without one, the oldest output is dropped. The command
// runs detached from any request: only its timeout, Signal or Kill end it.
// It gets a process group of its own, or a session with a pseudo-terminal.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds of one command's output.
const (
	// OutputCap is how much output a command keeps for late readers.
	OutputCap = 1 << 20
	// ReadChunk is the most one read from a pipe takes, and so the largest
	// chunk.
	ReadChunk = 32 << 10
	// ptyChunk is the most one read from a terminal takes.
	ptyChunk = 16 << 10
	// killedPipeGrace is how long a command killed by its timeout or by
	// Kill waits for the processes it left behind to close its output
	// before its output is closed.
	killedPipeGrace = 2 * time.Second
	// maxBatch bounds the bytes of one Batch.
	maxBatch = 256 << 10
	// stdinWriteLimit bounds how long one write to a command's stdin may
	// block on a command that does not read it.
	stdinWriteLimit = 30 * time.Second
)

// Stream names where a chunk of output came from.
type Stream string

// Streams of output.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
	PTY    Stream = "pty" // the terminal of a command started with one
)

// Chunk is one read from a command's output.
type Chunk struct {
	Stream Stream
	Off    int64 // offset of Data[0] in the command's whole output
	Data   []byte
}

// End is how a command ended.
type End struct {
	// ExitCode is the exit status, -1 when a signal killed the command.
	ExitCode int
	// Exited is false when a signal killed the command.
	Exited bool
	// Status is the exit status in words: "exit status 1", "signal: killed".
	Status string
	// Error is what waiting for the command reported ("" on success).
	Error string
	// Signal is the name of the signal that killed it (SIGKILL), if any.
	Signal string
	// TimedOut is set when the timeout killed the command.
	TimedOut bool
}

// Size is the size of a terminal.
type Size struct{ Cols, Rows uint16 }

// Options describe a command to start.
type Options struct {
	// Path is the program; Args its argv, Args[0] included.
	Path string
	Args []string
	// Env and Dir are its environment and working directory.
	Env []string
	Dir string
	// SysProcAttr carries the credentials and Pdeathsig; a process group
	// (or with a terminal, a session) of its own is always added.
	SysProcAttr *syscall.SysProcAttr
	// Stdin gives the command a pipe for stdin; without it stdin is
	// /dev/null. With a terminal, input always goes to the terminal.
	Stdin bool
	// Terminal, when set, runs the command on a new pseudo-terminal of that
	// size: its stdin, stdout and stderr, and its controlling terminal.
	Terminal *Size
	// Start starts the process (a reaper's Start when this process is pid
	// 1); nil is exec.Cmd.Start.
	Start func(*exec.Cmd) error
}

// Proc is one started command. Its owner calls Run on a goroutine.
type Proc struct {
	pid      int
	cmd      *exec.Cmd
	hadStdin bool
	tty      *os.File // terminal master; nil without a terminal
	stdin    *os.File // write end of stdin (or of the terminal); nil when none or closed
	stdinMu  sync.Mutex
	readEnds []*os.File
	streams  []Stream

	mu       sync.Mutex
	chunks   []Chunk // kept output, oldest first
	kept     int64   // bytes in chunks
	total    int64   // bytes produced so far
	readers  map[*Reader]struct{}
	changed  chan struct{} // closed and replaced when anything changes
	waiting  bool          // a pipe reader waits for a slow reader
	ended    bool          // exited and its output closed: end is final
	end      End
	endedAt  time.Time
	timedOut bool
	killed   bool // killed by the timeout or by Kill
}

// Errors of Proc's methods.
var (
	ErrEnded       = errors.New("the command has ended")
	ErrNoStdin     = errors.New("the command was started without stdin")
	ErrStdinClosed = errors.New("the stdin of the command is closed")
	ErrNoTerminal  = errors.New("the command was started without a terminal")
)

// Start starts a command. The caller owns it: it must call Run (on a
// goroutine of its own) for the command to be read and reaped.
func Start(o Options) (*Proc, error) {
	cmd := &exec.Cmd{Path: o.Path, Args: o.Args, Env: o.Env, Dir: o.Dir}
	attr := &syscall.SysProcAttr{}
	if o.SysProcAttr != nil {
		a := *o.SysProcAttr
		attr = &a
	}
	p := &Proc{cmd: cmd, hadStdin: o.Stdin || o.Terminal != nil, readers: map[*Reader]struct{}{}, changed: make(chan struct{})}
	var toClose []*os.File
	defer func() {
		for _, f := range toClose {
			f.Close()
		}
	}()
	fail := func(err error) (*Proc, error) {
		for _, f := range p.readEnds {
			f.Close()
		}
		p.CloseStdin()
		return nil, err
	}
	if o.Terminal != nil {
		master, slave, err := openPTY(*o.Terminal)
		if err != nil {
			return nil, err
		}
		toClose = append(toClose, slave)
		if c := attr.Credential; c != nil {
			unix.Fchown(int(slave.Fd()), int(c.Uid), -1)
		}
		p.tty = master
		in, err := dupFile(master)
		if err != nil {
			master.Close()
			return nil, err
		}
		p.stdin = in
		p.readEnds, p.streams = []*os.File{master}, []Stream{PTY}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		attr.Setpgid, attr.Setsid, attr.Setctty, attr.Ctty = false, true, true, 0
	} else {
		attr.Setpgid = true
		if o.Stdin {
			pr, pw, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("proc: stdin pipe: %w", err)
			}
			toClose = append(toClose, pr)
			cmd.Stdin, p.stdin = pr, pw
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return fail(fmt.Errorf("proc: stdout pipe: %w", err))
		}
		p.readEnds = append(p.readEnds, outR)
		toClose = append(toClose, outW)
		errR, errW, err := os.Pipe()
		if err != nil {
			return fail(fmt.Errorf("proc: stderr pipe: %w", err))
		}
		p.readEnds = append(p.readEnds, errR)
		toClose = append(toClose, errW)
		cmd.Stdout, cmd.Stderr = outW, errW
		p.streams = []Stream{Stdout, Stderr}
	}
	cmd.SysProcAttr = attr
	start := cmd.Start
	if o.Start != nil {
		start = func() error { return o.Start(cmd) }
	}
	if err := start(); err != nil {
		return fail(err)
	}
	p.pid = cmd.Process.Pid
	return p, nil
}

// Pid is the command's process id.
func (p *Proc) Pid() int { return p.pid }

// HasTerminal reports whether the command runs on a pseudo-terminal.
func (p *Proc) HasTerminal() bool { return p.tty != nil }

// notifyLocked wakes everyone waiting for a change.
func (p *Proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// pump reads one of the command's outputs until EOF (EIO for a terminal
// whose last holder is gone).
func (p *Proc) pump(f *os.File, stream Stream) {
	size := ReadChunk
	if stream == PTY {
		size = ptyChunk
	}
	buf := make([]byte, size)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			p.appendOutput(stream, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// appendOutput keeps data, dropping the oldest output beyond OutputCap, but
// waits first while that would drop output an attached reader has not read.
func (p *Proc) appendOutput(stream Stream, data []byte) {
	n := int64(len(data))
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		slowest := int64(-1)
		for r := range p.readers {
			if slowest < 0 || r.pos < slowest {
				slowest = r.pos
			}
		}
		if slowest < 0 || slowest >= p.firstKeptAfter(n) {
			break
		}
		p.waiting = true
		ch := p.changed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	p.waiting = false
	p.chunks = append(p.chunks, Chunk{Stream: stream, Off: p.total, Data: append([]byte(nil), data...)})
	p.total += n
	p.kept += n
	for p.kept > OutputCap && len(p.chunks) > 1 {
		p.kept -= int64(len(p.chunks[0].Data))
		p.chunks[0] = Chunk{}
		p.chunks = p.chunks[1:]
	}
	p.notifyLocked()
}

// firstKeptAfter is the offset of the oldest byte kept once n more bytes
// are appended.
func (p *Proc) firstKeptAfter(n int64) int64 {
	kept := p.kept + n
	first := p.total
	if len(p.chunks) > 0 {
		first = p.chunks[0].Off
	}
	for _, c := range p.chunks {
		if kept <= OutputCap {
			break
		}
		kept -= int64(len(c.Data))
		first = c.Off + int64(len(c.Data))
	}
	return first
}

// Reader is a position in a command's output.
type Reader struct{ pos int64 }

// NewReader returns a reader at the oldest output kept; it does not hold
// the command back.
func NewReader() *Reader { return &Reader{} }

// Attach registers a reader that holds the command back rather than lose
// output, from the oldest output kept (fromNow false) or from the next
// output on (fromNow true). Detach it when done.
func (p *Proc) Attach(fromNow bool) *Reader {
	r := &Reader{}
	p.mu.Lock()
	if fromNow {
		r.pos = p.total
	}
	p.readers[r] = struct{}{}
	p.mu.Unlock()
	return r
}

// Detach unregisters r.
func (p *Proc) Detach(r *Reader) {
	p.mu.Lock()
	delete(p.readers, r)
	p.notifyLocked()
	p.mu.Unlock()
}

// Batch is what a reader gets in one go.
type Batch struct {
	Chunks  []Chunk // pieces of kept chunks, from the reader's position on
	Dropped int64   // bytes dropped before them since the last batch
	Ended   bool    // no more output will come
	End     End
	// Changed is closed when there is more to read.
	Changed <-chan struct{}
}

// Next returns the output after r's position, up to 256 KiB, and moves r
// past it. The data slices are never written again and may be used
// freely.
func (p *Proc) Next(r *Reader) Batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b Batch
	first := p.total
	if len(p.chunks) > 0 {
		first = p.chunks[0].Off
	}
	if r.pos < first {
		b.Dropped = first - r.pos
		r.pos = first
	}
	size := 0
	for _, c := range p.chunks {
		end := c.Off + int64(len(c.Data))
		if end <= r.pos {
			continue
		}
		if size >= maxBatch {
			break
		}
		d := c.Data[r.pos-c.Off:]
		b.Chunks = append(b.Chunks, Chunk{Stream: c.Stream, Off: r.pos, Data: d})
		size += len(d)
		r.pos = end
	}
	if p.waiting && len(b.Chunks) > 0 {
		p.notifyLocked()
	}
	b.Changed = p.changed
	if r.pos == p.total && p.ended {
		b.Ended, b.End = true, p.end
	}
	return b
}

// Signal sends sig to the command's process group while the command runs.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return ErrEnded
	}
	if err := unix.Kill(-p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("proc: signal %d: %w", p.pid, err)
	}
	return nil
}

// Kill kills the process group; the output is then closed after a grace
// period even if something still holds it. timedOut marks the end as
// caused by a timeout.
func (p *Proc) Kill(timedOut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.killed = true
	p.timedOut = p.timedOut || timedOut
	unix.Kill(-p.pid, unix.SIGKILL)
}

// Run waits for the process and its output, then records the end. It is
// what owns the process; timeout 0 means none, else the command is killed
// when it runs longer.
func (p *Proc) Run(timeout time.Duration) {
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() { p.Kill(true) })
	}
	var pumps sync.WaitGroup
	for i, f := range p.readEnds {
		pumps.Add(1)
		go func() { defer pumps.Done(); p.pump(f, p.streams[i]) }()
	}

	// Wait for the exit without reaping, so that the pid and process group
	// stay ours while signals may still be sent to them.
	var si unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &si, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if timer != nil {
		timer.Stop()
	}
	p.mu.Lock()
	killed := p.killed
	p.mu.Unlock()
	waitErr := p.cmd.Wait()
	p.CloseStdin()

	pipesDone := make(chan struct{})
	go func() { pumps.Wait(); close(pipesDone) }()
	if killed {
		select {
		case <-pipesDone:
		case <-time.After(killedPipeGrace):
		}
	} else {
		<-pipesDone
	}
	for _, f := range p.readEnds {
		f.Close()
	}
	<-pipesDone

	end := End{ExitCode: -1}
	if st := p.cmd.ProcessState; st != nil {
		end.ExitCode = st.ExitCode()
		end.Exited = st.Exited()
		end.Status = st.String()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			end.Signal = SignalName(ws.Signal())
		}
	}
	if waitErr != nil {
		end.Error = waitErr.Error()
	}
	p.mu.Lock()
	end.TimedOut = p.timedOut
	p.ended, p.end, p.endedAt = true, end, time.Now()
	p.notifyLocked()
	p.mu.Unlock()
}

// CloseStdin closes the write end of the command's stdin, if any. With a
// terminal it closes only the agent's writing end.
func (p *Proc) CloseStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
}

// WriteStdin writes data to the command's stdin (its terminal, if it has
// one) and closes it after when closeAfter is set. A write blocks until
// the command reads the data, at most until ctx's deadline or 30 s.
func (p *Proc) WriteStdin(ctx context.Context, data []byte, closeAfter bool) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		if p.hadStdin {
			return ErrStdinClosed
		}
		return ErrNoStdin
	}
	if len(data) > 0 {
		deadline := time.Now().Add(stdinWriteLimit)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		p.stdin.SetWriteDeadline(deadline)
		if _, err := p.stdin.Write(data); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("proc: write stdin: the command did not read it in time: %w", err)
			}
			return fmt.Errorf("proc: write stdin: %w", err)
		}
	}
	if closeAfter {
		p.stdin.Close()
		p.stdin = nil
	}
	return nil
}

// State returns whether the command has ended, when, and how many bytes of
// output it keeps.
func (p *Proc) State() (ended bool, at time.Time, kept int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended, p.endedAt, p.kept
}

// SignalName is the SIGxxx name of sig.
func SignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}
