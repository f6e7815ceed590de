package local

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// buildRoot assembles the sandbox's root filesystem and pivots into it. It
// runs in the init, in the sandbox's user and mount namespaces, while the
// mount namespace still holds a copy of the host's mounts: /proc and sysfs
// can only be mounted while a full proc is visible, so everything is
// mounted before the old root goes.
func buildRoot(cfg *initConfig, fds [numInitFDs]int) error {
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	// Nothing mounted here may propagate to the namespace this one was
	// copied from.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	root, err := overlayRoot(cfg.Staging, fds[fdLower], fds[fdUpper])
	if err != nil {
		return err
	}
	defer unix.Close(root)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"agent", func() error { return mountAgent(root, fds[fdAgent]) }},
		{"/dev", func() error { return mountDev(root, cfg.ShmMB) }},
		{"/proc", func() error { return mountProc(root) }},
		{"/sys", func() error { return mountSys(root) }},
		{"/tmp", func() error {
			return mountNew(root, "tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%dm", cfg.TmpMB))
		}},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("mount %s: %w", s.name, err)
		}
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// it leaves no host path in the namespace.
	if err := unix.Fchdir(root); err != nil {
		return fmt.Errorf("enter root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	for rel, content := range cfg.Files {
		if err := os.WriteFile("/"+rel, []byte(content), 0o644); err != nil {
			return fmt.Errorf("write /%s: %w", rel, err)
		}
	}
	return nil
}

// overlayRoot mounts a tmpfs on staging, attaches the lower and upper
// layers there and mounts the overlay; it returns an O_PATH fd of the
// overlay's root. The lower layer is idmapped into the sandbox's range and
// userxattr keeps the overlay's own attributes in the user.* namespace,
// which an overlay mounted in a user namespace needs.
func overlayRoot(staging string, lower, upper int) (int, error) {
	if err := unix.Mount("tmpfs", staging, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=64k"); err != nil {
		return -1, fmt.Errorf("mount staging: %w", err)
	}
	st, err := unix.Open(staging, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open staging: %w", err)
	}
	defer unix.Close(st)
	for _, d := range []string{"lower", "upper", "root"} {
		if err := unix.Mkdirat(st, d, 0o700); err != nil {
			return -1, fmt.Errorf("staging: mkdir %s: %w", d, err)
		}
	}
	if err := unix.MoveMount(lower, "", st, "lower", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return -1, fmt.Errorf("attach lower layer: %w", err)
	}
	if err := unix.MoveMount(upper, "", st, "upper", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return -1, fmt.Errorf("attach upper layer: %w", err)
	}
	// Relative layer paths: the staging path may hold characters the
	// option parser would take for separators.
	if err := unix.Fchdir(st); err != nil {
		return -1, fmt.Errorf("enter staging: %w", err)
	}
	if err := unix.Mount("overlay", "root", "overlay", 0, "lowerdir=lower,upperdir=upper/upper,workdir=upper/work,userxattr"); err != nil {
		return -1, fmt.Errorf("mount overlay: %w", err)
	}
	root, err := unix.Open("root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open root: %w", err)
	}
	return root, nil
}

// mountAgent attaches the cubicle binary (a read-only detached mount) at
// agentPath.
func mountAgent(root, agent int) error {
	target, err := ensure(root, strings.TrimPrefix(agentPath, "/"), true)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	return moveOnto(agent, target)
}

// devices are bind-mounted from the host's /dev; the sandbox cannot make
// device nodes of its own.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

func mountDev(root, shmMB int) error {
	if err := mountNew(root, "dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k,nr_inodes=1024"); err != nil {
		return err
	}
	dev, err := ensure(root, "dev", false)
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	for _, name := range devices {
		tree, err := cloneTree(unix.AT_FDCWD, "/dev/"+name, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
		if err != nil {
			return err
		}
		target, err := ensure(dev, name, true)
		if err == nil {
			err = moveOnto(tree, target)
			unix.Close(target)
		}
		unix.Close(tree)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := mountNew(dev, "pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return err
	}
	if err := mountNew(dev, "shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("mode=1777,size=%dm", shmMB)); err != nil {
		return err
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dev, l[1]); err != nil {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

// procReadOnly are the parts of /proc that reach beyond the sandbox's
// namespaces; procMasked leak host information and read as empty.
var (
	procReadOnly = []string{"sys", "sysrq-trigger", "irq", "bus", "fs"}
	procMasked   = []string{"kcore", "keys", "timer_list", "sched_debug"}
)

func mountProc(root int) error {
	if err := mountNew(root, "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	proc, err := ensure(root, "proc", false)
	if err != nil {
		return err
	}
	defer unix.Close(proc)
	for _, name := range procReadOnly {
		tree, err := cloneTree(proc, name, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return err
		}
		err = unix.MoveMount(tree, "", proc, name, unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(tree)
		if err != nil {
			return fmt.Errorf("%s read-only: %w", name, err)
		}
	}
	for _, name := range procMasked {
		if err := unix.Faccessat(proc, name, unix.F_OK, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		tree, err := cloneTree(root, "dev/null", unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOEXEC)
		if err != nil {
			return err
		}
		err = unix.MoveMount(tree, "", proc, name, unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(tree)
		if err != nil {
			return fmt.Errorf("mask %s: %w", name, err)
		}
	}
	return nil
}

// mountSys mounts sysfs read-only. The kernel refuses it when the network
// namespace belongs to the host's user namespace, as a sandbox's does; then
// /sys is an empty read-only tmpfs (desktops run without it).
func mountSys(root int) error {
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err := mountNew(root, "sys", "sysfs", flags, "")
	if errors.Is(err, unix.EPERM) {
		err = mountNew(root, "sys", "tmpfs", flags, "mode=0555,size=4k,nr_inodes=1")
	}
	return err
}

// mountNew mounts a new filesystem at rel beneath dir (created if missing).
func mountNew(dir int, rel, fstype string, flags uintptr, data string) error {
	target, err := ensure(dir, rel, false)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	if err := unix.Mount(fstype, "/proc/self/fd/"+strconv.Itoa(target), fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, rel, err)
	}
	return nil
}

// cloneTree returns a detached copy of the mount at path (relative to
// dir) with attrs set on it.
func cloneTree(dir int, path string, attrs uint64) (int, error) {
	tree, err := unix.OpenTree(dir, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_set: attrs}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("set attributes of %s: %w", path, err)
	}
	return tree, nil
}

// moveOnto attaches the detached mount tree onto the object target is an
// O_PATH fd of.
func moveOnto(tree, target int) error {
	return unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// ensure returns an O_PATH fd of rel beneath dir, creating what is missing
// (directories, and the last component as an empty file when file is
// set). No component may be a symlink: a layer could otherwise point a
// mount at a host path.
func ensure(dir int, rel string, file bool) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	cur, err := unix.Openat2(dir, ".", &how)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", rel, err)
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		last := i == len(parts)-1
		if last && file {
			fd, err := unix.Openat(cur, p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			} else if !errors.Is(err, unix.EEXIST) {
				unix.Close(cur)
				return -1, fmt.Errorf("create %s: %w", rel, err)
			}
		} else if err := unix.Mkdirat(cur, p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(cur)
			return -1, fmt.Errorf("mkdir %s: %w", rel, err)
		}
		next, err := unix.Openat2(cur, p, &how)
		unix.Close(cur)
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", rel, err)
		}
		cur = next
	}
	return cur, nil
}
