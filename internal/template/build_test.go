package template

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/desktop"
)

// These tests run debootstrap against the real Debian mirror, as root.
// They skip only when not root or when debootstrap is missing, and never
// in CI (CI=true), whose setup installs debootstrap.

func requireBuilder(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("debootstrap is not installed; CI must install it (apt-get install debootstrap)")
		}
		t.Skip("debootstrap is not installed (apt-get install debootstrap)")
	}
}

// recorder collects progress reports; Build calls it from one goroutine at
// a time, the test reads it from another.
type recorder struct {
	mu     sync.Mutex
	events []Progress
	hook   func(Progress)
}

func (r *recorder) progress(p Progress) {
	r.mu.Lock()
	r.events = append(r.events, p)
	r.mu.Unlock()
	if r.hook != nil {
		r.hook(p)
	}
}

func (r *recorder) phases() map[Phase]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[Phase]int{}
	for _, e := range r.events {
		n[e.Phase]++
	}
	return n
}

// checkClean checks that a build under s left no temporary directory, no
// mount and no process behind.
func checkClean(t *testing.T, s *Store, name string) {
	t.Helper()
	entries, err := os.ReadDir(s.nameDir(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") || strings.HasPrefix(e.Name(), ".trash-") {
			t.Errorf("left behind: %s", filepath.Join(s.nameDir(name), e.Name()))
		}
	}
	if m := mountsUnder(t, "/proc/self/mountinfo", s.Dir()); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), s.Dir()) {
			t.Errorf("process left running: %s: %q", p, strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
}

func TestBuildReal(t *testing.T) {
	requireBuilder(t)
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	rec := &Recipe{
		Name:    "tiny",
		Suite:   "bookworm",
		Variant: "minbase",
		Steps: []Step{
			{Write: &WriteFile{Path: "/etc/cubicle/test.conf", Mode: "0640", Content: "hello\n"}},
			// The API file systems are there while steps run.
			{Run: "test -c /dev/null && test -r /proc/self/status && test -d /sys/kernel && test -d /dev/pts && id user > /root/id-user"},
		},
		User: &User{Name: "user", UID: 1000, Sudo: true},
		Env:  map[string]string{"LANG": "C.UTF-8"},
	}
	want, err := Expand(rec)
	if err != nil {
		t.Fatal(err)
	}
	wantHash, err := want.Hash()
	if err != nil {
		t.Fatal(err)
	}

	// Two builds of the same recipe at once: one builds, the other waits
	// for it and gets the same template.
	var recs [2]recorder
	var got [2]*Template
	var errs [2]error
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { got[i], errs[i] = s.Build(ctx, rec, recs[i].progress) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
	}
	tm := got[0]
	if got[1].Hash != tm.Hash || !got[1].Created.Equal(tm.Created) || got[1].RootFS != tm.RootFS {
		t.Errorf("concurrent builds returned different templates: %s at %v, %s at %v", tm.Ref(), tm.Created, got[1].Ref(), got[1].Created)
	}
	built, waited := recs[0].phases(), recs[1].phases()
	if built[PhaseDownload] == 0 {
		built, waited = waited, built
	}
	if built[PhaseDownload] == 0 || built[PhaseInstall] == 0 || built[PhaseSteps] == 0 {
		t.Errorf("the building call's reports: %v, want download, install and steps", built)
	}
	if waited[PhaseWait] != 1 || waited[PhaseDownload] != 0 {
		t.Errorf("the waiting call's reports: %v, want one wait and no download", waited)
	}

	if tm.Hash != wantHash || tm.Name != "tiny" {
		t.Errorf("built %s/%s, want tiny/%s", tm.Name, tm.Hash, wantHash)
	}
	if diff := cmp.Diff(want, tm.Recipe); diff != "" {
		t.Errorf("meta recipe (-want +got):\n%s", diff)
	}
	if tm.Created.IsZero() || tm.BuildSeconds <= 0 || tm.SizeBytes < 50<<20 || tm.Files < 1000 {
		t.Errorf("meta: created %v, %.1fs, %d bytes, %d files; want all set, over 50 MiB and 1000 files", tm.Created, tm.BuildSeconds, tm.SizeBytes, tm.Files)
	}
	var names []string
	for _, p := range tm.Packages {
		names = append(names, p.Name)
		if p.Version == "" {
			t.Errorf("package %s has no version", p.Name)
		}
	}
	for _, p := range []string{"base-files", "dpkg", "bash", "sudo", "passwd"} {
		if !slices.Contains(names, p) {
			t.Errorf("meta packages lack %s (have %d)", p, len(names))
		}
	}
	var meta map[string]any
	data, err := os.ReadFile(filepath.Join(tm.Dir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "hash", "recipe", "created", "size_bytes", "files", "packages"} {
		if _, ok := meta[k]; !ok {
			t.Errorf("meta.json lacks %q", k)
		}
	}
	if fi, err := os.Stat(filepath.Join(tm.Dir, "build.log")); err != nil || fi.Size() == 0 {
		t.Errorf("build.log: %v, want a non-empty log", err)
	}

	root := tm.RootFS
	read := func(p string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("read %s: %v", p, err)
		}
		return string(data)
	}
	if osr := read("etc/os-release"); !strings.Contains(osr, "VERSION_CODENAME=bookworm") {
		t.Errorf("/etc/os-release does not say bookworm:\n%s", osr)
	}
	if got := read("etc/cubicle/test.conf"); got != "hello\n" {
		t.Errorf("written file = %q, want %q", got, "hello\n")
	}
	checkMode(t, root, "etc/cubicle/test.conf", 0o640, 0)
	checkMode(t, root, "etc/sudoers.d/user", 0o440, 0)
	checkMode(t, root, "home/user", 0, 1000)
	if got := read("etc/sudoers.d/user"); got != "user ALL=(ALL:ALL) NOPASSWD: ALL\n" {
		t.Errorf("sudoers = %q", got)
	}
	if !strings.Contains(read("etc/passwd"), "\nuser:x:1000:1000::/home/user:/bin/bash\n") {
		t.Errorf("/etc/passwd has no user with uid 1000:\n%s", read("etc/passwd"))
	}
	if got := read("root/id-user"); !strings.HasPrefix(got, "uid=1000(user) gid=1000(user)") {
		t.Errorf("id user in a step = %q, want uid=1000(user) gid=1000(user)", got)
	}
	if got := read("etc/resolv.conf"); got != "" {
		t.Errorf("/etc/resolv.conf = %q, want empty: the host's is not the sandbox's", got)
	}
	if got := read("etc/hostname"); got != "localhost\n" {
		t.Errorf("/etc/hostname = %q, want localhost", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/sbin/policy-rc.d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("policy-rc.d left in the template: %v", err)
	}
	if lists, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*Packages*")); len(lists) != 0 {
		t.Errorf("apt lists left: %v", lists)
	}
	if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) != 0 {
		t.Errorf("%d .deb files left in the apt cache", len(debs))
	}
	checkMode(t, root, ".", 0o755, 0)
	checkNotWritable(t, root)

	// Built: the next Build is the stored one, with nothing run.
	var again recorder
	cached, err := s.Build(ctx, rec, again.progress)
	if err != nil {
		t.Fatal(err)
	}
	if cached.Hash != tm.Hash || !cached.Created.Equal(tm.Created) {
		t.Errorf("second Build = %s at %v, want the stored %s at %v", cached.Ref(), cached.Created, tm.Ref(), tm.Created)
	}
	if len(again.events) != 1 || again.events[0].Phase != PhaseDone || !strings.HasPrefix(again.events[0].Message, "cached ") {
		t.Errorf("second Build reported %+v, want one PhaseDone 'cached'", again.events)
	}
	if g, err := s.Get("tiny"); err != nil || g.Hash != tm.Hash {
		t.Errorf("Get(tiny) = %v, %v", g, err)
	}
	checkClean(t, s, "tiny")
}

// checkMode checks the permission bits (when perm is not 0) and the owner
// of root/rel.
func checkMode(t *testing.T, root, rel string, perm os.FileMode, uid uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, rel), &st); err != nil {
		t.Errorf("%s: %v", rel, err)
		return
	}
	if perm != 0 && os.FileMode(st.Mode&0o7777) != perm {
		t.Errorf("%s: mode %04o, want %04o", rel, st.Mode&0o7777, perm)
	}
	if st.Uid != uid {
		t.Errorf("%s: owner %d, want %d", rel, st.Uid, uid)
	}
}

// checkNotWritable checks that nothing in the template is writable by
// everyone, except sticky directories (/tmp) and device nodes.
func checkNotWritable(t *testing.T, root string) {
	t.Helper()
	bad := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m := fi.Mode()
		if m&os.ModeSymlink != 0 || m&os.ModeDevice != 0 || m&os.ModeCharDevice != 0 || m&os.ModeNamedPipe != 0 || m&os.ModeSocket != 0 {
			return nil
		}
		if m.Perm()&0o002 != 0 && !(m.IsDir() && m&os.ModeSticky != 0) {
			if bad++; bad <= 5 {
				t.Errorf("world-writable in the template: %s (%v)", p, m)
			}
		}
		return nil
	})
}

func TestBuildCancel(t *testing.T) {
	requireBuilder(t)
	t.Parallel()
	tests := []struct {
		name   string
		rec    *Recipe
		cancel func(Progress) bool
	}{
		{
			name: "during download",
			rec:  &Recipe{Name: "cancel-download", Suite: "bookworm", Packages: []string{"busybox"}},
			cancel: func(p Progress) bool {
				return p.Phase == PhaseDownload && p.Done >= 5
			},
		},
		{
			// The chroot's /proc, /sys and /dev are mounted then.
			name: "during a step",
			rec: &Recipe{Name: "cancel-step", Suite: "bookworm",
				Steps: []Step{{Run: "echo step-running; exec sleep 600"}}},
			// The step's first line of output: it runs, and is killed.
			cancel: func(p Progress) bool {
				return p.Phase == PhaseSteps && p.Message == "step-running"
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rec := &recorder{hook: func(p Progress) {
				if tc.cancel(p) {
					cancel()
				}
			}}
			start := time.Now()
			tm, err := s.Build(ctx, tc.rec, rec.progress)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Build = %v, %v; want context.Canceled", tm, err)
			}
			if ctx.Err() == nil {
				t.Fatal("Build failed before it was cancelled")
			}
			t.Logf("cancelled after %v: %v", time.Since(start).Round(time.Millisecond), err)
			checkClean(t, s, tc.rec.Name)
			if all, err := s.List(); err != nil || len(all) != 0 {
				t.Errorf("List after a cancelled build = %v, %v; want nothing", refs(all), err)
			}
		})
	}
}

// A build whose process is killed (SIGKILL, no clean-up code runs) leaves
// no mount and no process behind; its temporary directory is removed by
// the next build of the same recipe.
func TestBuildKilled(t *testing.T) {
	rec := &Recipe{Name: "killed", Suite: "bookworm"}
	if dir := os.Getenv("CUBICLE_TEMPLATE_KILLED_DIR"); dir != "" {
		// The process to kill: build and say when debootstrap installs
		// (it has mounted /proc and /sys in the new root by then).
		s, err := NewStore(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		s.Build(context.Background(), rec, func(p Progress) {
			if p.Phase == PhaseInstall && p.Done > 0 {
				once.Do(func() { os.Stdout.WriteString("\ncubicle-test: installing\n") })
			}
		})
		return
	}
	requireBuilder(t)
	t.Parallel()
	s := newTestStore(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestBuildKilled$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CUBICLE_TEMPLATE_KILLED_DIR="+s.Dir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "cubicle-test: installing") {
		n, err := out.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("the building process ended before installing: %v\n%s", err, seen.String())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	killed := time.Now()

	// Processes the killed build started may finish what they do; then
	// the namespace holding the build's mounts is gone.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if data, err := os.ReadFile(p); err == nil && strings.Contains(string(data), s.Dir()) {
				left = append(left, strings.ReplaceAll(string(data), "\x00", " "))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the killed build still run: %q", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the killed build's processes were gone %v after the kill", time.Since(killed).Round(time.Millisecond))
	if m := mountsUnder(t, "/proc/self/mountinfo", s.Dir()); len(m) != 0 {
		t.Errorf("the killed build left mounts: %v", m)
	}
	stale, _ := filepath.Glob(filepath.Join(s.nameDir("killed"), ".tmp-*"))
	if len(stale) != 1 {
		t.Fatalf("temporary directories after the kill: %v, want the one of the killed build", stale)
	}
	// The next build of the recipe, holding the lock, removes it.
	hash, err := rec.Hash()
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.lock(context.Background(), "killed", hash, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.removeStale("killed", hash)
	unlock()
	checkClean(t, s, "killed")
}

func TestBuildMissingPackage(t *testing.T) {
	requireBuilder(t)
	t.Parallel()
	s := newTestStore(t)
	rec := &Recipe{Name: "missing", Suite: "bookworm", Packages: []string{"no-such-package-cubicle"}}
	_, err := s.Build(context.Background(), rec, nil)
	if !errors.Is(err, desktop.ErrInvalid) || !strings.Contains(err.Error(), "Couldn't find these debs: no-such-package-cubicle") {
		t.Fatalf("Build with a missing package = %v, want ErrInvalid naming the package", err)
	}
	checkClean(t, s, "missing")
	// The log of the failed build stays, and the error says where.
	logs, _ := filepath.Glob(filepath.Join(s.nameDir("missing"), "*.failed.log"))
	if len(logs) != 1 || !strings.Contains(err.Error(), logs[0]) {
		t.Fatalf("failed logs %v; error %q should name the one log", logs, err)
	}
	if data, err := os.ReadFile(logs[0]); err != nil || !strings.Contains(string(data), "debootstrap") {
		t.Errorf("failed log: %v, %d bytes; want debootstrap's output", err, len(data))
	}
}

// TestBuildDesktop builds the default desktop template into the real
// store (CUBICLE_TEMPLATE_DIR, or /var/lib/cubicle/templates) and leaves
// it there. It takes minutes, so it runs only when asked:
//
//	CUBICLE_TEMPLATE_BUILD_DESKTOP=1 go test -run TestBuildDesktop -v -timeout 30m ./internal/template/
func TestBuildDesktop(t *testing.T) {
	if os.Getenv("CUBICLE_TEMPLATE_BUILD_DESKTOP") != "1" {
		t.Skip("set CUBICLE_TEMPLATE_BUILD_DESKTOP=1 to build the desktop template (minutes)")
	}
	requireBuilder(t)
	dir := os.Getenv("CUBICLE_TEMPLATE_DIR")
	if dir == "" {
		dir = DefaultDir
	}
	s, err := NewStore(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Builtin(DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tm, err := s.Build(context.Background(), rec, RenderProgress(os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s in %s: %d packages, %s (%d files), built in %.0fs, call took %v",
		tm.Ref(), tm.RootFS, len(tm.Packages), humanBytes(tm.SizeBytes), tm.Files, tm.BuildSeconds, time.Since(start).Round(time.Second))
	for _, p := range []string{"usr/bin/Xvfb", "usr/bin/xfce4-session", "usr/bin/xfwm4", "usr/bin/xfdesktop", "usr/bin/xfce4-panel",
		"usr/bin/xfce4-terminal", "usr/bin/dbus-launch", "usr/bin/xdotool", "usr/bin/scrot", "usr/bin/x11vnc", "usr/bin/websockify",
		"usr/bin/netstat", "usr/bin/xdg-open", "usr/bin/gtk-launch", "usr/bin/firefox-esr", "usr/bin/xrandr", "usr/bin/xdpyinfo",
		"usr/bin/sudo", "opt/noVNC/vnc.html", "opt/noVNC/utils/novnc_proxy", "home/user", "etc/sudoers.d/user",
		"etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfwm4.xml", "etc/xdg/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml"} {
		if _, err := os.Stat(filepath.Join(tm.RootFS, p)); err != nil {
			t.Errorf("desktop template lacks /%s: %v", p, err)
		}
	}
	if id, err := os.ReadFile(filepath.Join(tm.RootFS, "etc/machine-id")); err != nil || len(strings.TrimSpace(string(id))) != 32 {
		t.Errorf("/etc/machine-id = %q, %v; want 32 hex digits", id, err)
	}
	checkNotWritable(t, tm.RootFS)
	checkClean(t, s, DefaultName)
}
