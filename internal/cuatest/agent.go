package cuatest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// BuildCubicle builds the cubicle binary into dir and returns its path.
func BuildCubicle(dir string) (string, error) {
	bin := filepath.Join(dir, "cubicle")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/cubicle-dev/cubicle/cmd/cubicle")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cubicle: %v\n%s", err, out)
	}
	return bin, nil
}

// Main is a TestMain for packages whose tests run a real agent: it builds
// the cubicle binary into a temporary directory, sets *binary to it, runs
// the tests and returns their exit code.
func Main(m *testing.M, binary *string) int {
	dir, err := os.MkdirTemp("", "cubicle-cua-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *binary, err = BuildCubicle(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Agent is a real `cubicle agent` with its own Xvfb and XFCE session.
type Agent struct {
	URL     string
	Token   string
	Sandbox *client.Sandbox
}

// syncBuffer is a log buffer written by the agent process and read by the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartAgent runs `cubicle agent` from binary on a free display, the way a
// user does, and waits until its desktop is ready. It is stopped (SIGTERM,
// then SIGKILL to its process group) when the test ends. Without Xvfb the
// test is skipped.
func StartAgent(t *testing.T, binary string) *Agent {
	t.Helper()
	if _, err := exec.LookPath("Xvfb"); err != nil {
		t.Skip("Xvfb is not installed (scripts/deps.sh test installs it)")
	}
	if binary == "" {
		t.Fatal("no cubicle binary was built")
	}
	n := freeDisplay(t)
	addr := freePort(t)
	token := "cua-test-token"
	cmd := exec.Command(binary, "agent", "--display", ":"+strconv.Itoa(n), "--listen", addr, "--token", token)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	a := &Agent{URL: "http://" + addr, Token: token}
	t.Cleanup(func() {
		if a.Sandbox != nil {
			a.Sandbox.Close()
		}
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})
	sbx, err := client.ConnectAgent(a.URL, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	a.Sandbox = sbx
	if _, err := sbx.WaitReady(context.Background(), 3*time.Minute); err != nil {
		t.Fatalf("the desktop never became ready: %v", err)
	}
	return a
}

// freeDisplay finds a display number no X server holds, above the range
// the server tests use.
func freeDisplay(t *testing.T) int { return xvfbtest.FreeDisplay(t, 400+os.Getpid()%200, 1000) }

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Xterm is an xterm window on the desktop running an interactive sh.
type Xterm struct {
	Window desktop.Window
	Dir    string // a directory the desktop user may write to
}

// StartXterm launches an xterm titled title and waits for its window.
func StartXterm(t *testing.T, sbx *client.Sandbox, title string) *Xterm {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cua-xterm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := sbx.LaunchCommand(ctx, "xterm", "-T", title, "-geometry", "80x20+120+120", "-e", "sh"); err != nil {
		t.Fatal(err)
	}
	var win desktop.Window
	WaitFor(t, "the xterm window", 60*time.Second, func() (bool, string) {
		ws, err := sbx.FindWindows(ctx, client.WindowFilter{Title: title})
		if err != nil || len(ws) == 0 {
			return false, fmt.Sprint(ws, err)
		}
		win = ws[0]
		return win.Width > 0, fmt.Sprintf("%+v", win)
	})
	return &Xterm{Window: win, Dir: dir}
}

// WaitFor polls cond every 50 ms until it holds or timeout passes.
func WaitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// Title returns the title of window id.
func Title(ctx context.Context, sbx *client.Sandbox, id uint32) string {
	s, err := sbx.GetWindowTitle(ctx, id)
	if err != nil {
		return err.Error()
	}
	return s
}
