package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sandboxNamespaces are the namespaces a sandbox's init is cloned into.
// The network namespace is joined instead (it belongs to the host), and
// the init makes its cgroup namespace itself once it is in its cgroups.
const sandboxNamespaces = unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC

// startInit starts `InitBinary sandbox-init` as root of a new user
// namespace mapped to st's id range, in new namespaces, joined to the
// network namespace at netns, in the cgroup v2 group of g (when there is
// one) from the first instruction. The init has no parent-death signal: a
// sandbox outlives the server. It returns the init and the backend's end
// of the socket to it.
func (b *Backend) startInit(st *state, netns string, g groups, logf *os.File) (*os.Process, *net.UnixConn, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(pair[0]), "init socket")
	child := os.NewFile(uintptr(pair[1]), "init socket")
	defer parent.Close()
	defer child.Close()
	// The init is executed through an fd the server opened: the sandbox's
	// root cannot search the directories of every install location.
	exe, err := os.Open(b.cfg.InitBinary)
	if err != nil {
		return nil, nil, err
	}
	defer exe.Close()
	ids := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(st.HostBase), Size: IDRangeSize}}
	attr := &syscall.SysProcAttr{
		Cloneflags:  sandboxNamespaces,
		UidMappings: ids,
		GidMappings: ids,
		// The maps are written by host root, so setgroups can stay allowed:
		// sudo and the agent's switch to the desktop user need it.
		GidMappingsEnableSetgroups: true,
		// Without it host uid 0, unmapped in the namespace, would execute
		// the init and lose every capability there.
		Credential: &syscall.Credential{Uid: 0, Gid: 0},
		Setsid:     true,
	}
	if g.v2 != "" {
		cg, err := os.Open(g.v2)
		if err != nil {
			return nil, nil, fmt.Errorf("open cgroup: %w", err)
		}
		defer cg.Close()
		attr.UseCgroupFD = true
		attr.CgroupFD = int(cg.Fd())
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/fd/" + strconv.Itoa(initExeFD),
		Args:        []string{"cubicle", "sandbox-init"},
		Env:         []string{},
		Dir:         "/",
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{child, exe}, // initSockFD, initExeFD
		SysProcAttr: attr,
	}
	if err := startInNetNS(netns, cmd); err != nil {
		return nil, nil, fmt.Errorf("start init: %w", err)
	}
	fc, err := net.FileConn(parent)
	if err != nil {
		killInit(cmd.Process)
		return nil, nil, fmt.Errorf("init socket: %w", err)
	}
	conn, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		killInit(cmd.Process)
		return nil, nil, fmt.Errorf("init socket: unexpected %T", fc)
	}
	return cmd.Process, conn, nil
}

// startInNetNS starts cmd from a thread that has joined the network
// namespace at path, so the child starts in it.
func startInNetNS(path string, cmd *exec.Cmd) error {
	ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer unix.Close(ns)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("join network namespace: %w", err)
			return
		}
		err = cmd.Start()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		// Otherwise the thread stays locked and ends with this goroutine
		// rather than run other goroutines in the sandbox's namespace.
		errc <- err
	}()
	return <-errc
}

// awaitExec waits until the init has executed the agent. The init's end of
// the socket closes on exec; before that, the init writes why it failed.
func awaitExec(ctx context.Context, conn *net.UnixConn, pid int) error {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 8192)
	n, err := conn.Read(buf)
	if n > 0 {
		return errors.New(string(buf[:n]))
	}
	if !errors.Is(err, io.EOF) {
		if ctx.Err() != nil {
			return fmt.Errorf("wait for init: %w", ctx.Err())
		}
		return fmt.Errorf("wait for init: %w", err)
	}
	// The socket also closes when the init dies: only a live process
	// named after the agent has executed it.
	return poll(ctx, func() (bool, error) {
		st, err := readProcStat(pid)
		if err != nil || st.state == 'Z' || st.state == 'X' {
			return false, errors.New("the sandbox's init exited (the agent did not start or ended at once)")
		}
		return st.comm == agentComm, nil
	})
}

// killInit kills a started init and reaps it.
func killInit(p *os.Process) {
	p.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	reap(ctx, p.Pid)
}

// reap waits for the exit of pid, a child of this process, until ctx ends.
// A pid that is not (or no longer) our child is done at once.
//
// A thread of the init that called ptrace(PTRACE_TRACEME) is traced by us:
// when it dies it stays a zombie until we wait for its own thread id, and
// until then the init itself cannot be reaped. Those threads are reaped too.
func reap(ctx context.Context, pid int) error {
	return poll(ctx, func() (bool, error) {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.ECHILD) {
			return true, nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("wait for init: %w", err)
		}
		if got == pid {
			return true, nil
		}
		reapTracedThreads(pid)
		return false, nil
	})
}

// reapTracedThreads reaps the dead threads of process pid that we trace.
func reapTracedThreads(pid int) {
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil || tid == pid {
			continue
		}
		var ws unix.WaitStatus
		unix.Wait4(tid, &ws, unix.WNOHANG|unix.WALL, nil)
	}
}
