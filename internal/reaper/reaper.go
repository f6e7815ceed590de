// Package reaper collects orphaned processes when this process is pid 1 of a
// pid namespace or a child subreaper, without taking the exit status of the
// processes it started itself.
//
// Orphaned descendants are re-parented to pid 1 (or to the nearest
// subreaper) and stay zombies until that process waits for them. The Reaper
// waits for every zombie child that was not started through Reaper.Start, so
// exec.Cmd.Wait keeps working for the children the program owns. A child
// started any other way (plain exec.Cmd.Start) may be reaped before its Wait
// sees it: while a Reaper runs, start every child through it.
package reaper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sweepInterval is how often Run looks for zombies without a SIGCHLD: a
// safety net for signals that were coalesced or arrived before Run.
const sweepInterval = 10 * time.Second

// Reaper waits for orphaned zombie children. Create it with New and run Run
// in a goroutine the caller owns.
type Reaper struct {
	log      *slog.Logger
	interval time.Duration

	// startMu orders starts against sweeps: Start holds the read side from
	// fork until the pid is registered, a sweep holds the write side. A
	// sweep therefore never sees a child of ours that is not registered yet.
	startMu sync.RWMutex

	regMu sync.Mutex
	// owned maps the pids started through Start to their start time (clock
	// ticks after boot), so a reused pid is not mistaken for ours.
	owned map[int]uint64
}

// New returns a Reaper that logs to log (nil discards).
func New(log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reaper{log: log, interval: sweepInterval, owned: map[int]uint64{}}
}

// EnableSubreaper makes this process a child subreaper: orphaned descendants
// are re-parented to it instead of to pid 1. Any user may do this.
func EnableSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("reaper: set child subreaper: %w", err)
	}
	return nil
}

// IsSubreaper reports whether this process is a child subreaper.
func IsSubreaper() (bool, error) {
	var v int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0); err != nil {
		return false, fmt.Errorf("reaper: get child subreaper: %w", err)
	}
	return v != 0, nil
}

// IsInit reports whether this process is pid 1 of its pid namespace.
func IsInit() bool { return os.Getpid() == 1 }

// Start starts cmd and registers its pid before any sweep can look at it, so
// cmd.Wait reports the child's own exit status. r may be nil: then Start is
// cmd.Start.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	if r == nil {
		return cmd.Start()
	}
	r.startMu.RLock()
	defer r.startMu.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	// Nobody can have waited for the child yet (its owner only gets it when
	// Start returns, sweeps are held off), so its stat file is there.
	st, _, _ := readStat(pid)
	r.regMu.Lock()
	r.owned[pid] = st.start
	r.regMu.Unlock()
	return nil
}

// Run reaps orphaned zombie children on every SIGCHLD and on a slow periodic
// sweep, until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.sweep()
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-t.C:
		}
	}
}

// Sweep reaps the orphaned zombie children present now and returns how many
// it reaped.
func (r *Reaper) Sweep() int { return r.sweep() }

func (r *Reaper) sweep() int {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	self := os.Getpid()
	r.regMu.Lock()
	defer r.regMu.Unlock()
	// Drop registrations whose process is gone (its owner waited for it) or
	// whose pid now names another process.
	for pid, start := range r.owned {
		st, ok, _ := readStat(pid)
		if !ok || st.ppid != self || (start != 0 && st.start != start) {
			delete(r.owned, pid)
		}
	}
	zombies, err := zombieChildren(self)
	if err != nil {
		r.log.Warn("reaper: scan /proc", "err", err)
		return 0
	}
	n := 0
	for _, z := range zombies {
		if start, ok := r.owned[z.pid]; ok && (start == 0 || start == z.start) {
			continue
		}
		var ws unix.WaitStatus
		got, err := unix.Wait4(z.pid, &ws, unix.WNOHANG, nil)
		if err != nil || got != z.pid {
			continue
		}
		n++
		r.log.Debug("reaper: reaped orphan", "pid", z.pid, "status", waitString(ws))
	}
	return n
}

// stat is what the reaper needs from /proc/<pid>/stat.
type stat struct {
	pid   int
	state byte
	ppid  int
	start uint64
}

// zombieChildren lists the zombie processes whose parent is self.
func zombieChildren(self int) ([]stat, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var out []stat
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		st, ok, _ := readStat(pid)
		if ok && st.state == 'Z' && st.ppid == self {
			out = append(out, st)
		}
	}
	return out, nil
}

// readStat parses /proc/<pid>/stat. ok is false when the process is gone.
func readStat(pid int) (stat, bool, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false, err
	}
	st, err := parseStat(b)
	if err != nil {
		return stat{}, false, err
	}
	return st, true, nil
}

// parseStat parses the text of /proc/<pid>/stat. The command name is in
// parentheses and may itself hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return stat{}, errors.New("reaper: malformed stat")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return stat{}, fmt.Errorf("reaper: malformed stat pid: %w", err)
	}
	// Fields after the name: 3 state, 4 ppid, ..., 22 starttime.
	f := bytes.Fields(b[end+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, errors.New("reaper: short stat")
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return stat{}, fmt.Errorf("reaper: malformed stat ppid: %w", err)
	}
	start, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("reaper: malformed stat start time: %w", err)
	}
	return stat{pid: pid, state: f[0][0], ppid: ppid, start: start}, nil
}

func waitString(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "signal " + ws.Signal().String()
	}
	return "unknown"
}
