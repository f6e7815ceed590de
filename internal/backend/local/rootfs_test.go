package local

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// testRootFSDir caches the root filesystems the tests run sandboxes from.
const testRootFSDir = "/var/lib/cubicle/test-rootfs"

// busyboxRootFS returns a small root filesystem: static busybox with its
// applets, the C library the test binary needs, /etc/passwd with root and
// user (1000). It is built once and cached.
func busyboxRootFS(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox is not installed (apt-get install busybox-static)")
	}
	return cachedRootFS(t, "busybox-v1", buildBusybox)
}

// minbaseRootFS returns a Debian bookworm minbase root filesystem with sudo
// and a user "user" (uid 1000) allowed to run anything as root without a
// password. It is built once with debootstrap (a minute or two) and cached.
func minbaseRootFS(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap is not installed")
	}
	return cachedRootFS(t, "bookworm-minbase", buildMinbase)
}

// cachedRootFS builds name with build into a temporary directory and renames
// it into place, under a lock, unless it exists already.
func cachedRootFS(t testing.TB, name string, build func(dir string) error) string {
	t.Helper()
	final := filepath.Join(testRootFSDir, name)
	if _, err := os.Stat(final); err == nil {
		return final
	}
	if err := os.MkdirAll(testRootFSDir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(testRootFSDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(final); err == nil {
		return final
	}
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := build(tmp); err != nil {
		t.Fatalf("build root filesystem %s: %v", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	return final
}

func buildBusybox(dir string) error {
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "usr/local/bin", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(dir, "home/user"), 1000, 1000); err != nil {
		return err
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", applet)); err != nil {
			return err
		}
	}
	// The test binary runs inside as the agent; with -race it is linked
	// against the C library.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	libs, err := elfDeps(self)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(lib)), 0o755); err != nil {
			return err
		}
		if err := copyFile(lib, filepath.Join(dir, lib), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n",
		"etc/marker": "busybox test rootfs\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// elfDeps returns the interpreter and the libraries path needs, as host
// paths, when it is dynamically linked.
func elfDeps(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var deps []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return nil, err
			}
			deps = append(deps, strings.TrimRight(string(b), "\x00"))
		}
	}
	if len(deps) == 0 {
		return nil, nil
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	for _, lib := range needed {
		found := false
		for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"} {
			p := filepath.Join(d, lib)
			if _, err := os.Stat(p); err == nil {
				deps = append(deps, p)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("library %s of %s not found", lib, path)
		}
	}
	return deps, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func buildMinbase(dir string) error {
	cmd := exec.Command("debootstrap", "--variant=minbase", "--include=sudo", "bookworm", dir, "http://deb.debian.org/debian")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap: %w\n%s", err, tail(out, 2000))
	}
	appends := map[string]string{
		"etc/passwd": "user:x:1000:1000:user:/home/user:/bin/bash\n",
		"etc/group":  "user:x:1000:\n",
		"etc/shadow": "user:*:19000:0:99999:7:::\n",
	}
	for name, line := range appends {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/sudoers.d/user"), []byte("user ALL=(ALL:ALL) NOPASSWD: ALL\n"), 0o440); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/marker"), []byte("minbase test rootfs\n"), 0o644); err != nil {
		return err
	}
	home := filepath.Join(dir, "home/user")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	return os.Chown(home, 1000, 1000)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
