package local

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Exited reports the ids of sandboxes whose init ended on its own: the
// agent crashed, or something outside killed it. Destroy, and a failed
// Create, do not report. The owner of the Backend should destroy such a
// sandbox (its network, cgroups and layers are still there) and record it
// gone. The channel is closed by Close.
func (b *Backend) Exited() <-chan string { return b.exited }

// Close stops watching the sandboxes' inits and waits for the watchers to
// end. Sandboxes keep running; a new Backend adopts them.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	for _, f := range b.watches {
		f.Close() // wakes its watcher
	}
	b.mu.Unlock()
	b.watchers.Wait()
	close(b.exited)
	return nil
}

// watch reports on Exited when the init pid of sandbox id ends while the
// sandbox is neither being created nor destroyed. It waits on a pidfd
// through the runtime's poller, so no thread blocks per sandbox.
func (b *Backend) watch(id string, pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		b.log.Warn("cannot watch the sandbox's init: its death will go unnoticed until it is killed", "sandbox_id", id, "init_pid", pid, "error", err)
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		b.log.Warn("cannot watch the sandbox's init", "sandbox_id", id, "init_pid", pid, "error", err)
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		f.Close()
		return
	}
	if old := b.watches[id]; old != nil {
		old.Close()
	}
	b.watches[id] = f
	b.watchers.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.watchers.Done()
		// The callback is called when the runtime thinks the fd may be
		// readable; a pidfd is readable once its process has exited.
		err := rc.Read(func(fd uintptr) bool {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(p, 0)
			return err != nil && !errors.Is(err, unix.EINTR) || n > 0
		})
		b.mu.Lock()
		if b.watches[id] == f {
			delete(b.watches, id)
		}
		bx := b.boxes[id]
		mine := err == nil && !b.closed && bx != nil && !bx.busy && bx.st.InitPID == pid
		b.mu.Unlock()
		f.Close()
		if !mine {
			return
		}
		b.log.Warn("sandbox init exited on its own", "sandbox_id", id, "init_pid", pid, "status", exitStatus(pid))
		select {
		case b.exited <- id:
		case <-b.done:
		}
	}()
}

// unwatch stops watching sandbox id, which is being destroyed.
func (b *Backend) unwatch(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.watches[id]; f != nil {
		f.Close()
		delete(b.watches, id)
	}
}

// exitStatus describes how pid, an exited child of this process, ended,
// without reaping it; "unknown" for a process that is not our child (an
// adopted sandbox's init).
func exitStatus(pid int) string {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil {
		return "unknown"
	}
	// The SIGCHLD part of siginfo_t: si_code, then si_pid, si_uid and
	// si_status after the first 16 bytes.
	raw := (*[32]byte)(unsafe.Pointer(&info))
	status := int32(binary.NativeEndian.Uint32(raw[24:]))
	switch info.Code {
	case 1: // CLD_EXITED
		return "exit status " + strconv.Itoa(int(status))
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return "killed by " + unix.SignalName(syscall.Signal(status))
	}
	return "unknown"
}
