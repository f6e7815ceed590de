package netpolicy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// prepareNetNSDir makes dir a mount point with shared propagation, as
// iproute2 does for /run/netns: a namespace bound below it, or unmounted
// from it, is then seen the same way by every mount namespace that copied
// it, so a copy cannot keep a torn-down network namespace alive.
func prepareNetNSDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	// Not a mount point yet.
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// createNetNS makes a new network namespace, owned by the caller's user
// namespace, and binds it at path so that it outlives this process. In it,
// IPv6 is off for interfaces created or moved in later (the loopback keeps
// ::1). The calling thread is never switched: a new locked thread does the
// work and is handed back only when its namespace is restored.
func createNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Left locked on a failed restore, so that the runtime ends the
		// thread instead of reusing it in the wrong namespace.
		restored, err := inNewNetNS(path)
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return err
	}
	return nil
}

// inNewNetNS runs on a locked thread: unshare, bind, configure, restore.
// It reports whether the thread is back in its original namespace.
func inNewNetNS(path string) (restored bool, err error) {
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return true, err
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("unshare: %w", err)
	}
	defer func() {
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr != nil {
			restored = false
			err = errors.Join(err, fmt.Errorf("restore netns: %w", rerr))
			return
		}
		restored = true
	}()
	if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
		return false, fmt.Errorf("bind %s: %w", path, err)
	}
	// The sysctl tree under /proc/sys/net is the opening thread's netns.
	if err := writeSysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"); err != nil {
		return false, err
	}
	return false, nil
}

// removeNetNS unbinds and deletes a namespace file; a missing one is fine.
func removeNetNS(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// enterNetNS runs fn on a locked OS thread switched into the network
// namespace bound at path and restores the thread after. Sockets fn opens
// belong to that namespace for their whole life, and processes fn starts
// (os/exec forks from the calling thread) begin in it. If the thread
// cannot be restored, it is ended rather than reused. A panic in fn is
// raised again in the caller's goroutine.
func enterNetNS(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()

	type result struct {
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var res result
		restored := true
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
			done <- res
		}()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			res.err = fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			res.err = fmt.Errorf("setns %s: %w", filepath.Base(path), err)
			return
		}
		func() {
			defer func() { res.panic = recover() }()
			res.err = fn()
		}()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			restored = false
			res.err = errors.Join(res.err, fmt.Errorf("restore netns: %w", err))
		}
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// writeSysctl writes a value to a /proc/sys file. A missing file (IPv6
// disabled at boot) is not an error.
func writeSysctl(path, value string) error {
	err := os.WriteFile(path, []byte(value), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", path, err)
	}
	return nil
}
