package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InitMain is `cubicle sandbox-init`, which the backend starts in a new
// sandbox's namespaces (args are the arguments after "sandbox-init"). It
// receives its configuration and the layers from the backend, builds the
// root filesystem, pivots into it, installs the seccomp filter and
// executes the agent, which becomes pid 1 of the sandbox. It returns only
// when something failed, with the exit code; the backend learns why over
// the socket.
func InitMain(args []string) int {
	// Namespace changes are per thread: the unshare below, the mounts and
	// the final execve all happen on this one.
	runtime.LockOSThread()
	if len(args) != 0 {
		report(fmt.Errorf("unexpected arguments %q", args))
		return 2
	}
	err := runInit()
	report(err)
	return 1
}

// report sends err to the backend, which turns it into Create's error.
func report(err error) {
	msg := "sandbox-init: " + err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	unix.Write(initSockFD, []byte(msg))
	fmt.Fprintln(os.Stderr, msg)
}

func runInit() error {
	// Nothing this process holds may reach the agent: the socket must
	// close on exec (that is how the backend learns the exec happened)
	// and the init's own binary is a host file.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close range: %w", err)
	}
	unix.Close(initExeFD)
	cfg, fds, err := receiveConfig()
	if err != nil {
		return err
	}
	unix.Umask(0o022)
	// The backend has placed this process in the sandbox's cgroups by
	// now: a cgroup namespace rooted there hides the host's hierarchy.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	if err := buildRoot(cfg, fds); err != nil {
		return err
	}
	if err := installSeccomp(cfg.AllowPtrace); err != nil {
		return err
	}
	argv := append([]string{agentPath, "agent"}, cfg.AgentArgs...)
	if err := unix.Exec(agentPath, argv, cfg.Env); err != nil {
		return fmt.Errorf("exec %s: %w", agentPath, err)
	}
	return errors.New("exec returned")
}

// receiveConfig reads the backend's one message.
func receiveConfig() (*initConfig, [numInitFDs]int, error) {
	var fds [numInitFDs]int
	buf := make([]byte, maxConfig+1)
	oob := make([]byte, unix.CmsgSpace(numInitFDs*4))
	n, oobn, flags, _, err := unix.Recvmsg(initSockFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fds, fmt.Errorf("receive config: %w", err)
	}
	if n == 0 {
		return nil, fds, errors.New("receive config: the backend went away")
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > maxConfig {
		return nil, fds, errors.New("receive config: message truncated")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fds, fmt.Errorf("receive config: %w", err)
	}
	var got []int
	for _, m := range msgs {
		rights, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, fds, fmt.Errorf("receive config: %w", err)
		}
		got = append(got, rights...)
	}
	if len(got) != numInitFDs {
		return nil, fds, fmt.Errorf("receive config: got %d file descriptors, want %d", len(got), numInitFDs)
	}
	copy(fds[:], got)
	var cfg initConfig
	if err := json.Unmarshal(buf[:n], &cfg); err != nil {
		return nil, fds, fmt.Errorf("receive config: %w", err)
	}
	return &cfg, fds, nil
}
