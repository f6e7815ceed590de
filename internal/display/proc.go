package display

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// tailBytes is how much of a process's last output is kept for errors.
const tailBytes = 1024

// proc is one run of a supervised program.
type proc struct {
	part    string
	key     string // the options it was started with (see part.key)
	cmd     *exec.Cmd
	pid     int
	started time.Time

	stopping atomic.Bool   // set before we signal it: its exit is expected
	done     chan struct{} // closed once it has been waited for
	waitErr  error         // set before done is closed

	out     *os.File      // read end of its stdout+stderr
	outDone chan struct{} // closed when out reached EOF or was closed
	tailMu  sync.Mutex
	tail    []byte
}

// exited reports whether p has been waited for.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// lastOutput returns the end of p's output on one line.
func (p *proc) lastOutput() string {
	p.tailMu.Lock()
	defer p.tailMu.Unlock()
	return strings.Join(strings.Fields(string(p.tail)), " ")
}

// exitError describes how p ended, with its last output.
func (p *proc) exitError() error {
	err := p.waitErr
	if err == nil {
		err = errors.New("exit status 0")
	}
	if out := p.lastOutput(); out != "" {
		return fmt.Errorf("%w: %s", err, out)
	}
	return err
}

// startProc starts cmd for part in its own process group, with its output
// logged and kept in a short tail, and waits for it in a goroutine that
// hands the finished proc to the supervision loop.
func (s *Supervisor) startProc(part, key string, cmd *exec.Cmd) (*proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = s.sysProcAttr(true)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("display: start %s: %w", part, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = s.cfg.Reaper.Start(cmd)
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("display: start %s: %w", part, err)
	}
	p := &proc{
		part: part, key: key, cmd: cmd, pid: cmd.Process.Pid, started: time.Now(),
		done: make(chan struct{}), out: r, outDone: make(chan struct{}),
	}
	s.mu.Lock()
	s.outputs = append(s.outputs, r)
	s.mu.Unlock()
	s.log.Debug("display: started", "part", part, "pid", p.pid, "args", cmd.Args[1:])

	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		defer close(p.outDone)
		s.readOutput(p)
	}()
	go func() {
		defer s.wg.Done()
		p.waitErr = cmd.Wait()
		// Daemons the program left behind may hold its output open: give
		// the reader a moment for the last lines, not more.
		select {
		case <-p.outDone:
		case <-time.After(200 * time.Millisecond):
		}
		close(p.done)
		select {
		case s.exits <- p:
		case <-s.quit:
		}
	}()
	return p, nil
}

// readOutput logs p's output line by line and keeps its tail. It ends when
// every writer has closed the pipe or Close closes its read end.
func (s *Supervisor) readOutput(p *proc) {
	sc := bufio.NewScanner(p.out)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Bytes()
		s.log.Debug("display: output", "part", p.part, "pid", p.pid, "line", string(line))
		p.tailMu.Lock()
		p.tail = append(p.tail, line...)
		p.tail = append(p.tail, '\n')
		if n := len(p.tail); n > tailBytes {
			p.tail = append(p.tail[:0], p.tail[n-tailBytes:]...)
		}
		p.tailMu.Unlock()
	}
}

// stopProc ends p: SIGTERM to its process group, then SIGKILL after grace
// or when ctx ends. It returns once p has been waited for.
func stopProc(ctx context.Context, p *proc, grace time.Duration) {
	p.stopping.Store(true)
	if p.exited() {
		return
	}
	// The group and the process itself, in case it left its group.
	syscall.Kill(-p.pid, syscall.SIGTERM)
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	syscall.Kill(-p.pid, syscall.SIGKILL)
	p.cmd.Process.Kill()
	<-p.done
}

// sysProcAttr returns the attributes every process of the desktop gets: its
// own process group and, when configured and possible, the desktop user's
// credentials. direct adds a parent-death signal, for the processes the
// supervisor itself waits for.
func (s *Supervisor) sysProcAttr(direct bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if s.asUser {
		u := s.cfg.User
		a.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32{}, u.Groups...)}
	}
	if direct {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}

// command returns a command for name with environment env, run in dir.
func command(name string, env []string, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Dir = dir
	return cmd
}
