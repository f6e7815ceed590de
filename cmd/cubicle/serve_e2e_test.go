package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// sharedTemplates is where the desktop template is built once per machine;
// the test builds it there when it is missing (several minutes).
const sharedTemplates = "/var/lib/cubicle/templates"

type runningServer struct {
	cmd  *exec.Cmd
	url  string
	key  string
	done chan error
	mu   sync.Mutex
	log  bytes.Buffer
}

func (s *runningServer) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// startServe runs `cubicle serve` on stateDir and waits until it prints
// its URL (and, on the first start, its API key).
func startServe(t testing.TB, stateDir, addr string, extra ...string) *runningServer {
	t.Helper()
	args := []string{"serve", "--state-dir", stateDir, "--templates-dir", sharedTemplates, "--listen", addr, "--wait-lock", "20m"}
	cmd := exec.Command(binary, append(args, extra...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &runningServer{cmd: cmd, url: "http://" + addr, done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The first start may build the template: allow for it.
	deadline := time.After(25 * time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited early:\n%s", s.logText())
			}
			if f := strings.Fields(l); len(f) == 1 && strings.HasPrefix(f[0], "cbk_") {
				s.key = f[0]
			}
			if strings.HasPrefix(l, "cubicle: try:") {
				go func() {
					for range lines {
					}
				}()
				s.waitAnswering(t)
				return s
			}
		case <-deadline:
			t.Fatalf("serve did not start:\n%s", s.logText())
		}
	}
}

// serveForTest starts a server on a fresh state directory with extra
// flags. At cleanup it stops the server, logs its output if the test
// failed, and removes the directory. Not under t.TempDir: the sandbox's
// init passes through the state directory as an unprivileged host uid, so
// every parent must be searchable.
func serveForTest(t testing.TB, extra ...string) (*runningServer, string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("cubicle serve needs root")
	}
	state, err := os.MkdirTemp("", "cubicle-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(state, 0o755)
	srv := startServe(t, state, freePort(t), extra...)
	t.Cleanup(func() {
		srv.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logText())
		}
		os.RemoveAll(state)
	})
	return srv, state
}

// waitAnswering waits until the API answers: a restarted server adopts
// its sandboxes before it serves.
func (s *runningServer) waitAnswering(t testing.TB) {
	t.Helper()
	waitFor(t, "the server to answer", 2*time.Minute, func() (bool, string) {
		resp, err := http.Get(s.url + "/v1/openapi.yaml")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode < 500, resp.Status
	})
}

func (s *runningServer) stop(sig syscall.Signal) error {
	syscall.Kill(s.cmd.Process.Pid, sig)
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		return errors.New("serve did not stop within 30s")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// leftovers lists what a sandbox could leave on the host.
func leftovers(id string) []string {
	var left []string
	for _, ctrl := range []string{"memory", "pids", "cpu", "freezer", "unified"} {
		p := filepath.Join("/sys/fs/cgroup", ctrl, "cubicle", id)
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	links, _ := os.ReadDir("/sys/class/net")
	for _, l := range links {
		if strings.HasPrefix(l.Name(), "cb") && strings.Contains(id, strings.TrimPrefix(l.Name(), "cb")) {
			left = append(left, "veth "+l.Name())
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), id) {
		left = append(left, "mount with "+id)
	}
	return left
}

func TestServeEndToEnd(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("cubicle serve needs root")
	}
	// Not under t.TempDir: the sandbox's init passes through the state
	// directory as an unprivileged host uid, so every parent must be
	// searchable.
	state, err := os.MkdirTemp("", "cubicle-serve-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	os.Chmod(state, 0o755)
	addr := freePort(t)
	srv := startServe(t, state, addr)
	defer func() {
		srv.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("server log:\n%s", srv.logText())
		}
	}()
	if srv.key == "" {
		t.Fatal("the first start printed no API key")
	}
	ctx := context.Background()
	c, err := client.New(srv.url, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	start := time.Now()
	sbx, err := c.Create(ctx, client.CreateOptions{
		Timeout:  10 * time.Minute,
		Metadata: map[string]string{"suite": "e2e"},
		Env:      map[string]string{"GREETING": "hello from the sandbox"},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Logf("create -> desktop ready in %v", time.Since(start))
	id := sbx.ID()

	t.Run("desktop", func(t *testing.T) {
		shot := func() image.Image {
			t.Helper()
			b, err := sbx.Screenshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
		img := shot()
		if img.Bounds().Size() != (image.Point{1024, 768}) || uniform(img) {
			t.Errorf("screenshot %v, uniform %v", img.Bounds().Size(), uniform(img))
		}
		// Ready means drawn: the first screenshot is the whole desktop, the
		// same as a moment later, but for the panel's clock (top right).
		time.Sleep(2 * time.Second)
		clock := image.Rect(760, 0, 1024, 28)
		if n := differingPixels(img, shot(), clock); n > 0 {
			t.Errorf("%d pixels changed in the 2 s after the sandbox was ready: the desktop was still drawing", n)
		}
		if err := sbx.MoveMouse(ctx, 200, 150); err != nil {
			t.Fatal(err)
		}
		if p, err := sbx.GetCursorPosition(ctx); err != nil || p != (desktop.Point{X: 200, Y: 150}) {
			t.Errorf("cursor %v %v", p, err)
		}
	})

	t.Run("commands and files", func(t *testing.T) {
		// GREETING is the sandbox's own; LANG comes from the template.
		res, err := sbx.Commands.Run(ctx, `echo "$GREETING"; id -un; echo $DISPLAY; echo $LANG`)
		if err != nil {
			t.Fatal(err)
		}
		if want := "hello from the sandbox\nuser\n:0\nC.UTF-8\n"; res.Stdout != want {
			t.Errorf("stdout %q, want %q", res.Stdout, want)
		}
		_, err = sbx.Commands.Run(ctx, "exit 3")
		var exit *client.CommandExitError
		if !errors.As(err, &exit) || exit.Result.ExitCode != 3 {
			t.Errorf("exit 3: %v", err)
		}
		if _, err := sbx.Files.Write(ctx, "/home/user/note.txt", []byte("notes ✓")); err != nil {
			t.Fatal(err)
		}
		got, err := sbx.Files.Read(ctx, "/home/user/note.txt")
		if err != nil || string(got) != "notes ✓" {
			t.Errorf("read back %q %v", got, err)
		}
		if _, err := sbx.Files.Read(ctx, "/etc/shadow"); err == nil {
			t.Error("the desktop user read /etc/shadow")
		}
		// Each sandbox gets its own hosts file that names it, and the
		// host's name servers.
		hosts, err := sbx.Files.Read(ctx, "/etc/hosts")
		if err != nil || !strings.Contains(string(hosts), sbx.ID()) {
			t.Errorf("/etc/hosts = %q, %v; want a line for %s", hosts, err, sbx.ID())
		}
		if _, err := sbx.Files.Read(ctx, "/etc/resolv.conf"); err != nil {
			t.Errorf("/etc/resolv.conf: %v", err)
		}
	})

	t.Run("list and metadata", func(t *testing.T) {
		page, err := c.List(ctx, client.ListOptions{Metadata: map[string]string{"suite": "e2e"}})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range page.Sandboxes {
			found = found || s.ID == id
		}
		if !found {
			t.Errorf("list by metadata misses %s: %+v", id, page.Sandboxes)
		}
	})

	t.Run("server restart keeps the sandbox and its timeout", func(t *testing.T) {
		// A sandbox whose timeout passes while the server is down or
		// just after: the new server must still end it.
		short, err := c.Create(ctx, client.CreateOptions{Timeout: 20 * time.Second})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		srv.stop(syscall.SIGKILL)
		srv2 := startServe(t, state, addr)
		srv = srv2
		sb2, err := c.Connect(ctx, id)
		if err != nil {
			t.Fatalf("connect after restart: %v", err)
		}
		res, err := sb2.Commands.Run(ctx, "echo still here")
		if err != nil || res.Stdout != "still here\n" {
			t.Errorf("after restart: %+v %v", res, err)
		}
		waitFor(t, "the short sandbox's timeout to kill it", 2*time.Minute, func() (bool, string) {
			info, err := c.Get(ctx, short.ID())
			if err != nil {
				return false, err.Error()
			}
			return info.State == "killed", info.State
		})
		waitFor(t, "the expired sandbox's leftovers to go", 30*time.Second, func() (bool, string) {
			l := leftovers(short.ID())
			return len(l) == 0, fmt.Sprint(l)
		})
		if _, err := short.Commands.Run(ctx, "true"); err == nil {
			t.Error("an expired sandbox still runs commands")
		}
	})

	t.Run("setting a timeout shortens it", func(t *testing.T) {
		s, err := c.Create(ctx, client.CreateOptions{Timeout: time.Hour})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer c.Kill(ctx, s.ID())
		if err := s.SetTimeout(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the shortened timeout to kill the sandbox", time.Minute, func() (bool, string) {
			info, err := c.Get(ctx, s.ID())
			if err != nil {
				return false, err.Error()
			}
			return info.State == "killed", info.State
		})
	})

	t.Run("a sandbox whose agent dies is removed", func(t *testing.T) {
		s, err := c.Create(ctx, client.CreateOptions{Timeout: time.Hour})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer c.Kill(ctx, s.ID())
		if err := syscall.Kill(sandboxInit(t, s.ID()), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the server to notice the agent's death", time.Minute, func() (bool, string) {
			info, err := c.Get(ctx, s.ID())
			if err != nil {
				return false, err.Error()
			}
			return info.State == "killed", info.State
		})
		waitFor(t, "the dead sandbox's leftovers to go", 30*time.Second, func() (bool, string) {
			l := leftovers(s.ID())
			return len(l) == 0, fmt.Sprint(l)
		})
	})

	t.Run("kill leaves nothing", func(t *testing.T) {
		if err := c.Kill(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sandbox's leftovers to go", 30*time.Second, func() (bool, string) {
			l := leftovers(id)
			return len(l) == 0, fmt.Sprint(l)
		})
		if _, err := sbx.Commands.Run(ctx, "true"); err == nil {
			t.Error("a killed sandbox still runs commands")
		}
	})
}
