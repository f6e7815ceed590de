package template

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// requireRoot skips when not root, except in CI, which must run
// everything.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root (mount namespaces, chroot, debootstrap)")
}

// mountsUnder lists the mount points at or below dir in the namespace
// that mountinfo describes.
func mountsUnder(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	points, err := mountPoints(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range points {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

func TestMountNamespace(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "root dir") // a space, escaped in mountinfo
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	err := inMountNamespace(func() error {
		if unix.Gettid() == unix.Getpid() {
			t.Error("the build runs on the main thread")
		}
		thread, _ := os.Readlink("/proc/thread-self/ns/mnt")
		process, _ := os.Readlink("/proc/self/ns/mnt")
		if thread == "" || thread == process {
			t.Errorf("the build thread's mount namespace %q is the process's %q", thread, process)
		}
		unmount, err := apiMounts(root)
		if err != nil {
			return err
		}
		inside := mountsUnder(t, "/proc/thread-self/mountinfo", root)
		want := []string{"proc", "sys", "dev", "dev/pts", "dev/shm"}
		for _, w := range want {
			if !slices.Contains(inside, filepath.Join(root, w)) {
				t.Errorf("in the build namespace, %s is not mounted (mounts: %v)", w, inside)
			}
		}
		// The host (the process's main namespace) sees none of it.
		if host := mountsUnder(t, "/proc/self/mountinfo", dir); len(host) != 0 {
			t.Errorf("the host namespace sees the build's mounts: %v", host)
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, "dev", "null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Mode&0o777 != 0o666 {
			t.Errorf("dev/null: mode %o, err %v; want a character device, mode 0666", st.Mode, err)
		}
		if err := unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if left := mountsUnder(t, "/proc/thread-self/mountinfo", root); len(left) != 0 {
			t.Errorf("after unmount: %v still mounted", left)
		}

		// What a killed process leaves is swept, deepest first.
		for _, p := range []string{"a", "a/b", "c"} {
			target := filepath.Join(root, p)
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=1m"); err != nil {
				return err
			}
		}
		if err := unmountUnder(root); err != nil {
			t.Errorf("unmountUnder: %v", err)
		}
		if left := mountsUnder(t, "/proc/thread-self/mountinfo", root); len(left) != 0 {
			t.Errorf("after unmountUnder: %v still mounted", left)
		}
		// Left mounted on purpose: it must vanish with the namespace.
		return unix.Mount("tmpfs", filepath.Join(root, "c"), "tmpfs", 0, "size=1m")
	})
	if err != nil {
		t.Fatal(err)
	}
	if host := mountsUnder(t, "/proc/self/mountinfo", dir); len(host) != 0 {
		t.Errorf("after the build namespace ended, the host sees %v", host)
	}
}
