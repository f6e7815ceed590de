package launch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// waitFile polls until path holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q (err %v), want %q", path, b, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLauncherAppRunsArgvWithoutShell(t *testing.T) {
	dir := t.TempDir()
	apps := filepath.Join(dir, "share", "applications")
	os.MkdirAll(apps, 0o755)
	out := filepath.Join(dir, "out")
	// The URI lands in one argv element, so shell syntax in it stays text.
	os.WriteFile(filepath.Join(apps, "writer.desktop"), []byte(
		"[Desktop Entry]\nName=Writer\nExec=sh -c \"printf '%%s' \\\"\\$1\\\" > "+out+"\" writer %u\n"), 0o644)
	l := New(Config{Env: func() []string {
		return []string{"PATH=/usr/bin:/bin", "XDG_DATA_DIRS=" + filepath.Join(dir, "share")}
	}})
	defer l.Close(context.Background())

	uri := "x; touch " + filepath.Join(dir, "pwned")
	pid, err := l.App(context.Background(), "writer", uri)
	if err != nil {
		t.Fatal(err)
	}
	if pid <= 0 {
		t.Errorf("pid = %d", pid)
	}
	waitFile(t, out, uri)
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("the URI was run by a shell")
	}
}

func TestLauncherErrors(t *testing.T) {
	l := New(Config{Env: func() []string { return []string{"PATH=/usr/bin:/bin", "XDG_DATA_DIRS=/nonexistent"} }})
	defer l.Close(context.Background())
	ctx := context.Background()
	if _, err := l.App(ctx, "no-such-app", ""); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("App(no-such-app) error = %v, want ErrNotFound", err)
	}
	if _, err := l.Command(ctx, []string{"no-such-program-xyz"}, ""); !errors.Is(err, desktop.ErrNotFound) {
		t.Errorf("Command(no-such-program) error = %v, want ErrNotFound", err)
	}
	if _, err := l.Command(ctx, nil, ""); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Command(nil) error = %v, want ErrInvalid", err)
	}
	if _, err := l.Open(ctx, ""); !errors.Is(err, desktop.ErrInvalid) {
		t.Errorf("Open(\"\") error = %v, want ErrInvalid", err)
	}
}

func TestLauncherCloseKillsProcessGroup(t *testing.T) {
	l := New(Config{})
	// The shell starts a grandchild in the same process group.
	pid, err := l.Command(context.Background(), []string{"sh", "-c", "sleep 300 & sleep 300"}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l.Close(ctx)
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still exists after Close (kill 0: %v)", pid, err)
	}
}
