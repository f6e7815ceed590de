package agent

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
	// outputCap is how much output a command keeps for late readers. A
	// reader attached to the stream holds the command back instead of
	// losing output; without one, the oldest output is dropped.
	outputCap = 1 << 20
	// readChunk is the most one read from a pipe takes, and so the largest
	// data event.
	readChunk = 32 << 10
	// killedPipeGrace is how long a command killed by its timeout or on
	// shutdown waits for the processes it left behind to close its output
	// before the agent closes it.
	killedPipeGrace = 2 * time.Second
)

// Stream kinds of a chunk of output.
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
)

// chunk is one read from a command's stdout or stderr.
type chunk struct {
	stream string
	off    int64 // offset of data[0] in the command's whole output
	data   []byte
}

// endInfo is how a command ended.
type endInfo struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// proc is one command: its process, the output it keeps and who reads it.
type proc struct {
	pid     int
	info    commandInfo
	cmd     *exec.Cmd
	stdin   *os.File // write end of stdin; nil when started without one
	stdinMu sync.Mutex

	mu       sync.Mutex
	chunks   []chunk // kept output, oldest first
	kept     int64   // bytes in chunks
	total    int64   // bytes produced so far
	readers  map[*outputReader]struct{}
	changed  chan struct{} // closed and replaced when anything changes
	waiting  bool          // a pipe reader waits for a slow reader
	exited   bool          // the process was reaped: its pid is not ours any more
	ended    bool          // exited and its output closed: end is final
	end      endInfo
	endedAt  time.Time
	timedOut bool
	killed   bool // killed by the timeout or on shutdown
	readEnds []*os.File
}

// outputReader is a reader attached to the stream of a command; pos is the
// offset of the next byte it wants.
type outputReader struct{ pos int64 }

func newProc(cmd *exec.Cmd, info commandInfo) *proc {
	return &proc{cmd: cmd, info: info, readers: map[*outputReader]struct{}{}, changed: make(chan struct{})}
}

// notifyLocked wakes everyone waiting for a change.
func (p *proc) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// pump reads one of the command's pipes into its output until EOF.
func (p *proc) pump(f *os.File, stream string) {
	buf := make([]byte, readChunk)
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

// appendOutput keeps data, dropping the oldest output beyond outputCap, but
// waits first while that would drop output an attached reader has not read.
func (p *proc) appendOutput(stream string, data []byte) {
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
	p.chunks = append(p.chunks, chunk{stream: stream, off: p.total, data: append([]byte(nil), data...)})
	p.total += n
	p.kept += n
	for p.kept > outputCap && len(p.chunks) > 1 {
		p.kept -= int64(len(p.chunks[0].data))
		p.chunks[0] = chunk{}
		p.chunks = p.chunks[1:]
	}
	p.notifyLocked()
}

// firstKeptAfter is the offset of the oldest byte kept once n more bytes
// are appended.
func (p *proc) firstKeptAfter(n int64) int64 {
	kept := p.kept + n
	first := p.total
	if len(p.chunks) > 0 {
		first = p.chunks[0].off
	}
	for _, c := range p.chunks {
		if kept <= outputCap {
			break
		}
		kept -= int64(len(c.data))
		first = c.off + int64(len(c.data))
	}
	return first
}

// attach registers a reader that holds the command back rather than lose
// output; detach it when done.
func (p *proc) attach() *outputReader {
	r := &outputReader{}
	p.mu.Lock()
	p.readers[r] = struct{}{}
	p.mu.Unlock()
	return r
}

func (p *proc) detach(r *outputReader) {
	p.mu.Lock()
	delete(p.readers, r)
	p.notifyLocked()
	p.mu.Unlock()
}

// outputBatch is what a reader gets in one go.
type outputBatch struct {
	chunks  []chunk // pieces of kept chunks, from the reader's position on
	dropped int64   // bytes dropped before them since the last batch
	ended   bool    // no more output will come
	end     endInfo
	changed <-chan struct{}
}

// maxBatch bounds the bytes of one batch.
const maxBatch = 256 << 10

// next returns the output after r.pos, up to maxBatch bytes, and moves
// r.pos past it. The data slices are never written again and may be used
// without the lock.
func (p *proc) next(r *outputReader) outputBatch {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b outputBatch
	first := p.total
	if len(p.chunks) > 0 {
		first = p.chunks[0].off
	}
	if r.pos < first {
		b.dropped = first - r.pos
		r.pos = first
	}
	size := 0
	for _, c := range p.chunks {
		end := c.off + int64(len(c.data))
		if end <= r.pos {
			continue
		}
		if size >= maxBatch {
			break
		}
		d := c.data[r.pos-c.off:]
		b.chunks = append(b.chunks, chunk{stream: c.stream, off: r.pos, data: d})
		size += len(d)
		r.pos = end
	}
	if p.waiting && len(b.chunks) > 0 {
		p.notifyLocked()
	}
	b.changed = p.changed
	if r.pos == p.total && p.ended {
		b.ended, b.end = true, p.end
	}
	return b
}

// signal sends sig to the command's process group while the command runs.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return errProcEnded
	}
	if err := unix.Kill(-p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("agent: signal command %d: %w", p.pid, err)
	}
	return nil
}

var errProcEnded = errors.New("the command has ended")

// kill kills the process group for a timeout or a shutdown; the output is
// then closed after killedPipeGrace even if something still holds it.
func (p *proc) kill(timedOut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	p.killed = true
	p.timedOut = p.timedOut || timedOut
	unix.Kill(-p.pid, unix.SIGKILL)
}

// run waits for the process and its output, then records the end. It is
// the goroutine that owns the process; timeout 0 means none.
func (p *proc) run(timeout time.Duration) {
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() { p.kill(true) })
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); p.pump(p.readEnds[0], streamStdout) }()
	go func() { defer pumps.Done(); p.pump(p.readEnds[1], streamStderr) }()

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
	p.exited = true
	killed := p.killed
	p.mu.Unlock()
	waitErr := p.cmd.Wait()
	p.closeStdin()

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

	end := endInfo{ExitCode: -1}
	if st := p.cmd.ProcessState; st != nil {
		end.ExitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			end.Signal = signalName(ws.Signal())
		}
	}
	if waitErr != nil {
		end.Error = waitErr.Error()
	}
	p.mu.Lock()
	if p.timedOut {
		end.TimedOut = true
		end.Error = fmt.Sprintf("the command ran past its timeout of %s and was killed", timeout)
	}
	p.ended, p.end, p.endedAt = true, end, time.Now()
	p.notifyLocked()
	p.mu.Unlock()
}

// closeStdin closes the write end of the command's stdin, if any.
func (p *proc) closeStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
}

// stdinWriteLimit bounds how long one write to a command's stdin may block
// on a command that does not read it.
const stdinWriteLimit = 30 * time.Second

// writeStdin writes data to the command's stdin and closes it after when
// closeAfter is set. A write blocks until the command reads the data, at
// most until ctx's deadline or stdinWriteLimit.
func (p *proc) writeStdin(ctx context.Context, data []byte, closeAfter bool) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		if p.info.Stdin {
			return errStdinClosed
		}
		return errNoStdin
	}
	if len(data) > 0 {
		deadline := time.Now().Add(stdinWriteLimit)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		p.stdin.SetWriteDeadline(deadline)
		if _, err := p.stdin.Write(data); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("agent: write stdin: the command did not read it in time: %w", err)
			}
			return fmt.Errorf("agent: write stdin: %w", err)
		}
	}
	if closeAfter {
		p.stdin.Close()
		p.stdin = nil
	}
	return nil
}

var (
	errNoStdin     = errors.New("the command was started without stdin")
	errStdinClosed = errors.New("the stdin of the command is closed")
)

// state returns whether the command has ended and when.
func (p *proc) state() (ended bool, at time.Time, kept int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended, p.endedAt, p.kept
}

// signalName is the SIGxxx name of sig.
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}
