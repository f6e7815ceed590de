package template

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/cubicle-dev/cubicle/internal/mountinfo"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// inMountNamespace runs fn on an OS thread of its own that has left the
// process's mount namespace for a private copy of it. Whatever fn mounts,
// and whatever the processes it starts mount (they are forked from that
// thread), lives in that namespace only: it is invisible to the host and
// disappears with the thread, even if this process is killed. The thread
// is never reused: it exits when fn returns.
func inMountNamespace(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread cannot exit, so it would stay in the new
			// namespace for good (and /proc/self would show it). Hold
			// it while a goroutine, which must then run on another
			// thread, does the work.
			defer runtime.UnlockOSThread()
			done := make(chan struct{})
			go func() {
				defer close(done)
				errc <- inMountNamespace(fn)
			}()
			<-done
			return
		}
		// No UnlockOSThread: a goroutine that exits locked takes its
		// thread with it, and the thread's namespace with it.
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("template: new mount namespace: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("template: make mounts private: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// apiMounts mounts what package scripts expect in a chroot: /proc, a
// read-only /sys, and a /dev of its own (a tmpfs with the usual device
// nodes, a new devpts instance and /dev/shm). The returned function
// unmounts them; it must be called on the same thread.
func apiMounts(root string) (unmount func() error, err error) {
	var done []string
	unmount = func() error {
		var errs []error
		for _, m := range slices.Backward(done) {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("template: unmount %s: %w", m, err))
			}
		}
		done = nil
		return errors.Join(errs...)
	}
	mount := func(src, rel, fstype string, flags uintptr, data string) error {
		target := filepath.Join(root, rel)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("template: mount %s: %w", rel, err)
		}
		if err := unix.Mount(src, target, fstype, flags, data); err != nil {
			return fmt.Errorf("template: mount %s: %w", rel, err)
		}
		done = append(done, target)
		return nil
	}
	const safe = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	steps := []func() error{
		func() error { return mount("proc", "proc", "proc", safe, "") },
		func() error { return mount("sysfs", "sys", "sysfs", safe|unix.MS_RDONLY, "") },
		func() error { return mount("tmpfs", "dev", "tmpfs", unix.MS_NOSUID, "mode=0755,size=16m") },
		func() error { return makeDevNodes(filepath.Join(root, "dev")) },
		func() error {
			return mount("devpts", "dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
		},
		func() error { return mount("tmpfs", "dev/shm", "tmpfs", safe, "mode=1777,size=64m") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, errors.Join(err, unmount())
		}
	}
	return unmount, nil
}

// makeDevNodes fills a fresh /dev.
func makeDevNodes(dev string) error {
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		p := filepath.Join(dev, n.name)
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("template: mknod %s: %w", p, err)
		}
		// The umask may have taken bits away.
		if err := os.Chmod(p, 0o666); err != nil {
			return fmt.Errorf("template: mknod %s: %w", p, err)
		}
	}
	links := [][2]string{{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"}}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(dev, l[0])); err != nil {
			return fmt.Errorf("template: /dev: %w", err)
		}
	}
	return nil
}

// unmountUnder detaches every mount at or below dir in the calling
// thread's mount namespace, deepest first: what a killed debootstrap or
// step left behind.
func unmountUnder(dir string) error {
	points, err := mountPoints("/proc/thread-self/mountinfo")
	if err != nil {
		return err
	}
	var under []string
	for _, p := range points {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			under = append(under, p)
		}
	}
	slices.SortFunc(under, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range under {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("template: unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// mountPoints lists the mount points in a mountinfo file.
func mountPoints(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("template: read mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		out = append(out, mountinfo.Unescape(fields[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("template: read mounts: %w", err)
	}
	return out, nil
}
