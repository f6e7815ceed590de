package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// binary is the cubicle binary built once for the end-to-end tests.
var binary string

// afterAll are run, last first, when every test and benchmark is done:
// for fixtures that benchmarks share across their runs.
var afterAll []func()

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cubicle-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cubicle")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cubicle: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range slices.Backward(afterAll) {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeDisplay finds a display number no X server holds.
func freeDisplay(t *testing.T) int { return xvfbtest.FreeDisplay(t, 140, 400) }

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type runningAgent struct {
	cmd     *exec.Cmd
	url     string
	display int
	log     *bytes.Buffer
	done    chan error
}

// startAgent runs `cubicle agent` the way a user does.
func startAgent(t *testing.T, extra ...string) *runningAgent {
	t.Helper()
	if _, err := exec.LookPath("Xvfb"); err != nil {
		t.Skip("Xvfb is not installed (scripts/deps.sh test installs it)")
	}
	n := freeDisplay(t)
	addr := freePort(t)
	args := append([]string{"agent", "--display", ":" + strconv.Itoa(n), "--listen", addr}, extra...)
	cmd := exec.Command(binary, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &runningAgent{cmd: cmd, url: "http://" + addr, display: n, log: &log, done: make(chan error, 1)}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-a.done
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", log.String())
		}
	})
	return a
}

// tagged lists the processes that carry the desktop tag for display n.
func tagged(n int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		vars := strings.Split(string(env), "\x00")
		hasTag, hasDisplay := false, false
		for _, v := range vars {
			hasTag = hasTag || strings.HasPrefix(v, "CUBICLE_DESKTOP=")
			hasDisplay = hasDisplay || v == "DISPLAY=:"+strconv.Itoa(n)
		}
		if hasTag && hasDisplay {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
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

func TestAgentEndToEnd(t *testing.T) {
	token := "e2e-token-123"
	a := startAgent(t, "--token", token)
	ctx := context.Background()
	sbx, err := client.ConnectAgent(a.url, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}
	defer sbx.Close()

	rd, err := sbx.WaitReady(ctx, 3*time.Minute)
	if err != nil {
		t.Fatalf("desktop never became ready: %v", err)
	}
	if rd.Screen == nil || *rd.Screen != (desktop.Size{Width: 1024, Height: 768}) {
		t.Errorf("readiness screen = %v, want 1024x768", rd.Screen)
	}

	t.Run("token required", func(t *testing.T) {
		anon, _ := client.ConnectAgent(a.url)
		defer anon.Close()
		if _, err := anon.GetScreenSize(ctx); !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("without token: %v, want ErrUnauthorized", err)
		}
		bad, _ := client.ConnectAgent(a.url, client.WithToken("wrong"))
		defer bad.Close()
		if _, err := bad.GetScreenSize(ctx); !errors.Is(err, client.ErrUnauthorized) {
			t.Errorf("wrong token: %v, want ErrUnauthorized", err)
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		b, err := sbx.Screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("screenshot is not a PNG: %v", err)
		}
		if got := img.Bounds().Size(); got != (image.Point{1024, 768}) {
			t.Errorf("screenshot size = %v, want 1024x768", got)
		}
		if uniform(img) {
			t.Error("the desktop screenshot is one flat colour")
		}
	})

	t.Run("mouse", func(t *testing.T) {
		if err := sbx.MoveMouse(ctx, 100, 120); err != nil {
			t.Fatal(err)
		}
		p, err := sbx.GetCursorPosition(ctx)
		if err != nil || p != (desktop.Point{X: 100, Y: 120}) {
			t.Errorf("cursor = %v, %v; want (100, 120)", p, err)
		}
		if err := sbx.LeftClick(ctx, 1024, 10); !errors.Is(err, client.ErrInvalid) {
			t.Errorf("click outside the screen: %v, want ErrInvalid", err)
		}
	})

	t.Run("terminal typing", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "typed")
		os.Chmod(filepath.Dir(out), 0o777)
		title := "cubicle-e2e-term"
		if _, err := sbx.LaunchCommand(ctx, "xfce4-terminal", "--disable-server", "--title", title,
			"-x", "sh", "-c", "stty -echo; cat > "+out); err != nil {
			t.Fatal(err)
		}
		var win desktop.Window
		waitFor(t, "the terminal window", 60*time.Second, func() (bool, string) {
			ws, err := sbx.FindWindows(ctx, client.WindowFilter{Title: title})
			if err != nil || len(ws) == 0 {
				return false, fmt.Sprint(ws, err)
			}
			win = ws[0]
			return true, ""
		})
		if win.Class == "" || win.PID == 0 {
			t.Errorf("window %+v lacks class or pid", win)
		}
		if err := sbx.FocusWindow(ctx, win.ID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the terminal to have the focus", 20*time.Second, func() (bool, string) {
			id, err := sbx.GetCurrentWindowID(ctx)
			return err == nil && id == win.ID, fmt.Sprint(id, err)
		})
		// Canonical mode: ctrl+u kills the line typed so far, so "junk"
		// never reaches cat; the combination has to really arrive.
		if err := sbx.Write(ctx, "junk"); err != nil {
			t.Fatal(err)
		}
		if err := sbx.Press(ctx, "ctrl+u"); err != nil {
			t.Fatal(err)
		}
		text := "Grüße aus Cubicle: 東京 ☃ ñ € — done"
		if err := sbx.Write(ctx, text); err != nil {
			t.Fatal(err)
		}
		if err := sbx.Press(ctx, "enter"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the typed text in the file", 30*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(out)
			return string(b) == text+"\n", fmt.Sprintf("%q", b)
		})
	})

	t.Run("clipboard", func(t *testing.T) {
		want := "clip ✂ board"
		if err := sbx.SetClipboard(ctx, want); err != nil {
			t.Fatal(err)
		}
		got, err := sbx.Clipboard(ctx)
		if err != nil || got != want {
			t.Errorf("clipboard = %q, %v; want %q", got, err, want)
		}
	})

	t.Run("batch stops at the first failure", func(t *testing.T) {
		res, err := sbx.Do(ctx,
			desktop.Action{Type: desktop.Move}.At(10, 10),
			desktop.Action{Type: desktop.Key, Keys: []string{"definitely_not_a_key"}},
			desktop.Action{Type: desktop.Move}.At(20, 20))
		var de *desktop.Error
		if !errors.As(err, &de) || de.Code != desktop.CodeUnknownKey || de.Index != 1 {
			t.Fatalf("Do = %v, want unknown_key at index 1", err)
		}
		if res == nil || res.Completed != 0 {
			// Validation runs before any action, so nothing ran.
			t.Errorf("result = %+v, want 0 completed", res)
		}
	})

	t.Run("settle and screenshot in one batch", func(t *testing.T) {
		res, err := sbx.DoBatch(ctx, desktop.Batch{
			Actions:    []desktop.Action{desktop.Action{Type: desktop.Move}.At(300, 300)},
			Settle:     &desktop.Settle{QuietMS: 50, TimeoutMS: 3000},
			Screenshot: &desktop.ScreenshotOptions{Format: "jpeg", Width: 512},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Screenshot == nil || res.Screenshot.Width != 512 || res.Screenshot.Height != 384 {
			t.Fatalf("batch screenshot = %+v, want 512x384", res.Screenshot)
		}
		if res.Settled == nil {
			t.Error("batch result has no settled flag")
		}
	})

	t.Run("stop leaves nothing behind", func(t *testing.T) {
		if len(tagged(a.display)) == 0 {
			t.Fatal("no tagged desktop processes found while running: the check would prove nothing")
		}
		syscall.Kill(a.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err := <-a.done:
			a.done <- err
			if err != nil {
				t.Errorf("agent exited with %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("agent did not stop within 60s of SIGTERM")
		}
		waitFor(t, "desktop processes to be gone", 10*time.Second, func() (bool, string) {
			left := tagged(a.display)
			return len(left) == 0, fmt.Sprint(left)
		})
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", a.display)); err == nil {
			t.Errorf("the X lock file of :%d is left", a.display)
		}
	})
}

// differingPixels counts the pixels that differ between a and b outside
// skip.
func differingPixels(a, b image.Image, skip image.Rectangle) int {
	n := 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			if (image.Point{x, y}).In(skip) {
				continue
			}
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				n++
			}
		}
	}
	return n
}

func uniform(img image.Image) bool {
	b := img.Bounds()
	r0, g0, b0, _ := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r != r0 || g != g0 || bl != b0 {
				return false
			}
		}
	}
	return true
}
