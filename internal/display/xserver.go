package display

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jezek/xgb"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
)

// xReadyTimeout bounds the wait for a new X server to answer. XFCE and other
// desktops starting at the same time on two cores can make it slow.
const xReadyTimeout = 60 * time.Second

const socketDir = "/tmp/.X11-unix"

func lockPath(n int) string   { return "/tmp/.X" + strconv.Itoa(n) + "-lock" }
func socketPath(n int) string { return socketDir + "/X" + strconv.Itoa(n) }

// xvfbArgs returns Xvfb's arguments for c.
func xvfbArgs(c Config) []string {
	args := []string{
		":" + strconv.Itoa(c.Display),
		"-screen", "0", fmt.Sprintf("%dx%dx%d", c.Width, c.Height, c.Depth),
		"-dpi", strconv.Itoa(c.DPI),
		"-nolisten", "tcp", "-noreset", "-ac",
	}
	if !c.GLX {
		args = append(args, "-extension", "GLX")
	}
	return args
}

// launchXvfb starts Xvfb and waits until it completes an X handshake.
func (s *Supervisor) launchXvfb(ctx context.Context) (*proc, error) {
	n := s.cfg.Display
	if err := claimDisplay(ctx, n); err != nil {
		return nil, err
	}
	// Xvfb creates the socket directory itself only when it is root.
	if err := os.Mkdir(socketDir, 0o1777); err == nil {
		os.Chmod(socketDir, 0o1777)
	}
	cmd := command("Xvfb", s.baseEnv(), "/", xvfbArgs(s.cfg)...)
	cmd.SysProcAttr = s.xSysProcAttr()
	p, err := s.startProc(partXvfb, "", cmd)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, xReadyTimeout)
	defer cancel()
	if err := waitX(ctx, n, p); err != nil {
		stopProc(context.WithoutCancel(ctx), p, time.Second)
		removeStaleLock(n)
		if strings.Contains(p.lastOutput(), "already active") {
			err = fmt.Errorf("%w: %w", err, desktop.ErrConflict)
		}
		return nil, fmt.Errorf("display: start Xvfb on :%d: %w", n, err)
	}
	return p, nil
}

// xSysProcAttr is sysProcAttr without the user's credentials: the X server
// runs as this process.
func (s *Supervisor) xSysProcAttr() *syscall.SysProcAttr {
	a := s.sysProcAttr(true)
	a.Credential = nil
	return a
}

// claimDisplay makes sure display n is free: it removes a lock file and
// socket left by a dead server and fails when a live server holds n.
func claimDisplay(ctx context.Context, n int) error {
	if pid, ok := lockOwner(n); ok {
		return fmt.Errorf("display: display :%d is held by live pid %d (%s): %w", n, pid, lockPath(n), desktop.ErrConflict)
	}
	removeStaleLock(n)
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if nc, err := dialX(dctx, n); err == nil {
		nc.Close()
		return fmt.Errorf("display: display :%d: another X server answers on its socket: %w", n, desktop.ErrConflict)
	}
	return nil
}

// lockOwner returns the pid in display n's lock file and whether it is alive.
func lockOwner(n int) (int, bool) {
	b, err := os.ReadFile(lockPath(n))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	err = unix.Kill(pid, 0)
	return pid, err == nil || errors.Is(err, unix.EPERM)
}

// removeStaleLock removes display n's lock file and socket unless a live
// process holds the lock.
func removeStaleLock(n int) {
	if _, alive := lockOwner(n); alive {
		return
	}
	if _, err := os.Stat(lockPath(n)); err == nil {
		os.Remove(socketPath(n))
		os.Remove(lockPath(n))
	}
}

// dialX opens display n's socket: the abstract one first, then the file.
func dialX(ctx context.Context, n int) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", "@"+socketPath(n))
	if err == nil {
		return nc, nil
	}
	nc, err2 := d.DialContext(ctx, "unix", socketPath(n))
	if err2 == nil {
		return nc, nil
	}
	return nil, fmt.Errorf("abstract socket: %v; %s: %w", err, socketPath(n), err2)
}

// answersX reports whether an X server on display n completes a handshake.
// The connection is closed again at once.
func answersX(ctx context.Context, n int) error {
	nc, err := dialX(ctx, n)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	xc, err := xgb.NewConnNet(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("handshake: %w", err)
	}
	xc.Close()
	return nil
}

// waitX polls display n until the server p answers, p exits or ctx ends.
func waitX(ctx context.Context, n int, p *proc) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		// The lock names the server that holds the display: an answer
		// counts only once it is ours.
		if pid, alive := lockOwner(n); alive && pid == p.pid {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			last = answersX(actx, n)
			cancel()
			if last == nil {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it answered: %w", p.exitError())
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("not answering: %w: %w", last, ctx.Err())
			}
			return fmt.Errorf("not answering: %w", ctx.Err())
		case <-t.C:
		}
	}
}
