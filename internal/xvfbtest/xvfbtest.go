// Package xvfbtest starts a real Xvfb for tests, on a display number the
// server picks itself (-displayfd), so test packages can run in parallel.
package xvfbtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options shape the test display.
type Options struct {
	Width, Height, Depth int  // default 1024x768x24
	DPI                  int  // default 96
	GLX                  bool // keep the GLX extension (off by default: faster start)
}

// Server is a running Xvfb.
type Server struct {
	Display string // ":N"
	Num     int
	PID     int
}

// Start runs Xvfb for the test and stops it in t.Cleanup. It skips the test
// when Xvfb is not installed (the test command installs it, so CI never
// skips).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, stop, err := start(o)
	if err != nil {
		if strings.Contains(err.Error(), "executable file not found") {
			t.Skipf("Xvfb is not installed (apt-get install xvfb): %v", err)
		}
		t.Fatalf("start Xvfb: %v", err)
	}
	t.Cleanup(stop)
	return s
}

// StartMain is Start for TestMain and benchmarks outside a testing.TB: it
// returns a stop function the caller must call.
func StartMain(o Options) (*Server, func(), error) { return start(o) }

func start(o Options) (*Server, func(), error) {
	if o.Width == 0 {
		o.Width, o.Height = 1024, 768
	}
	if o.Depth == 0 {
		o.Depth = 24
	}
	if o.DPI == 0 {
		o.DPI = 96
	}
	path, err := exec.LookPath("Xvfb")
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	args := []string{"-displayfd", "3", "-screen", "0", fmt.Sprintf("%dx%dx%d", o.Width, o.Height, o.Depth),
		"-dpi", strconv.Itoa(o.DPI), "-nolisten", "tcp", "-noreset", "-ac"}
	if !o.GLX {
		args = append(args, "-extension", "GLX")
	}
	cmd := exec.Command(path, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, nil, err
	}
	w.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("Xvfb did not report a display (%q)", s)
		}
		return &Server{Display: ":" + strconv.Itoa(n), Num: n, PID: cmd.Process.Pid}, stop, nil
	case <-exited:
		return nil, nil, fmt.Errorf("Xvfb exited before it was ready")
	case <-ctx.Done():
		stop()
		return nil, nil, fmt.Errorf("Xvfb not ready after 20s")
	}
}

// Command returns a command that runs on s's display, in its own process
// group, killed with the test. It gets no D-Bus session bus and no
// accessibility bridge: GTK programs would otherwise start bus daemons of
// their own that outlive the test.
func (s *Server) Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+s.Display, "DBUS_SESSION_BUS_ADDRESS=disabled:", "NO_AT_BRIDGE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Run starts name on s's display and kills its process group in t.Cleanup.
func (s *Server) Run(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := s.Command(t, name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd
}

// FreeDisplay returns a display number from first to last (excluded) that
// no X server holds: no lock file and no abstract socket. For tests that
// start an X server themselves (an agent does); each caller keeps to its
// own range so that packages running at once do not race for one.
func FreeDisplay(t testing.TB, first, last int) int {
	t.Helper()
	for n := first; n < last; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		if c, err := net.Dial("unix", fmt.Sprintf("@/tmp/.X11-unix/X%d", n)); err == nil {
			c.Close()
			continue
		}
		return n
	}
	t.Fatalf("no free X display number from %d to %d", first, last-1)
	return 0
}
