package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/internal/sandbox"
)

// LoopbackNetwork is a Network without any way out: each sandbox gets a
// network namespace of its own with only the loopback interface, kept as a
// bind mount of the namespace in a directory. It is what a sandbox without
// network needs (a namespace of its own still separates its abstract unix
// sockets, X11 among them, from every other sandbox), and it serves tests.
type LoopbackNetwork struct {
	dir string
}

// NewLoopbackNetwork returns a LoopbackNetwork that keeps its namespaces in
// dir (created if missing).
func NewLoopbackNetwork(dir string) (*LoopbackNetwork, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("local: loopback network: directory %q is not absolute", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local: loopback network: %w", err)
	}
	return &LoopbackNetwork{dir: dir}, nil
}

// Setup creates the namespace of id with loopback up.
func (n *LoopbackNetwork) Setup(ctx context.Context, id string) (NetInfo, error) {
	path := filepath.Join(n.dir, id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return NetInfo{}, fmt.Errorf("local: loopback network: setup %s: %w", id, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- newLoopbackNS(path)
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return NetInfo{}, fmt.Errorf("local: loopback network: setup %s: %w", id, err)
	}
	return NetInfo{NetNSPath: path}, nil
}

// newLoopbackNS moves the calling thread, locked to its goroutine, into a
// new network namespace, brings lo up, binds the namespace to path and
// moves the thread back. The thread stays locked (and so ends with its
// goroutine) unless it made it back.
func newLoopbackNS(path string) error {
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(self)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare: %w", err)
	}
	err = loopbackUp()
	if err == nil {
		if merr := unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, ""); merr != nil {
			err = fmt.Errorf("bind namespace: %w", merr)
		}
	}
	if unix.Setns(self, unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	return err
}

// loopbackUp sets the IFF_UP flag of lo in the current network namespace.
func loopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// Apply accepts any policy: nothing leaves a loopback-only namespace.
func (n *LoopbackNetwork) Apply(ctx context.Context, id string, p sandbox.NetworkPolicy) error {
	return nil
}

// Teardown removes the namespace of id.
func (n *LoopbackNetwork) Teardown(ctx context.Context, id string) error {
	path := filepath.Join(n.dir, id)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("local: loopback network: teardown %s: %w", id, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: loopback network: teardown %s: %w", id, err)
	}
	return nil
}

// Reclaim removes the namespace of every id not in keep.
func (n *LoopbackNetwork) Reclaim(ctx context.Context, keep map[string]bool) error {
	entries, err := os.ReadDir(n.dir)
	if err != nil {
		return fmt.Errorf("local: loopback network: reclaim: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if keep[e.Name()] || !validID(e.Name()) {
			continue
		}
		errs = append(errs, n.Teardown(ctx, e.Name()))
	}
	return errors.Join(errs...)
}
