package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The writable layer of a sandbox lives on an ext4 filesystem in a sparse
// image file of the sandbox's disk size, so a sandbox cannot fill the
// host's disk. The image is attached to a loop device with
// LO_FLAGS_AUTOCLEAR and mounted as a detached mount that only the
// sandbox's mount namespace ever holds: when the sandbox's last process
// ends, the mount goes, and with it the loop device. The server never
// mounts it in a namespace of its own, so nothing leaks when it dies.

// findMkfs returns the path of mkfs.ext4.
func findMkfs() (string, error) {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mkfs.ext4 not found (install e2fsprogs)")
}

// makeImage creates path as a sparse ext4 filesystem of sizeMB whose root
// directory belongs to owner.
func makeImage(ctx context.Context, mkfs, path string, sizeMB int, owner uint32) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	// No journal: the layer lives and dies with the sandbox, and the
	// journal would cost 32 MiB of host disk per GiB of sandbox disk. No
	// blocks reserved for root: the sandbox's root is not the file
	// system's root and could not use them.
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-F", "-m", "0", "-O", "^has_journal",
		"-E", fmt.Sprintf("root_owner=%d:%d", owner, owner), path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return unix.Kill(-cmd.Process.Pid, unix.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("image: mkfs.ext4: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mountImage attaches the image at path to a self-clearing loop device,
// mounts its ext4 as a detached mount, and creates the overlay's upper and
// work directories in it, owned by owner. It returns the mount's fd.
func mountImage(path string, owner uint32) (int, error) {
	img, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("image: %w", err)
	}
	defer unix.Close(img)
	loop, dev, err := attachLoop(img, path)
	if err != nil {
		return -1, fmt.Errorf("image: %w", err)
	}
	// The mount holds the loop device from here on; closing our fd leaves
	// the mount as its only user, so the device clears when it goes.
	defer unix.Close(loop)
	mnt, err := mountExt4(dev)
	if err != nil {
		return -1, fmt.Errorf("image: %w", err)
	}
	for _, d := range []struct {
		name string
		mode uint32
	}{{"upper", 0o755}, {"work", 0o700}} {
		if err := unix.Mkdirat(mnt, d.name, d.mode); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(mnt)
			return -1, fmt.Errorf("image: mkdir %s: %w", d.name, err)
		}
	}
	for _, name := range []string{"upper", "work", "lost+found"} {
		err := unix.Fchownat(mnt, name, int(owner), int(owner), unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			unix.Close(mnt)
			return -1, fmt.Errorf("image: chown %s: %w", name, err)
		}
	}
	return mnt, nil
}

// attachLoop binds img to a free loop device with LO_FLAGS_AUTOCLEAR and
// returns an open fd of the device and its path.
func attachLoop(img int, name string) (int, string, error) {
	ctl, err := unix.Open("/dev/loop-control", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("loop: %w", err)
	}
	defer unix.Close(ctl)
	cfg := unix.LoopConfig{Fd: uint32(img)}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], name)
	for range 32 {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return -1, "", fmt.Errorf("loop: get free device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", fmt.Errorf("loop: %w", err)
		}
		err = unix.IoctlLoopConfigure(fd, &cfg)
		if err == nil {
			return fd, dev, nil
		}
		unix.Close(fd)
		if !errors.Is(err, unix.EBUSY) {
			return -1, "", fmt.Errorf("loop: configure %s: %w", dev, err)
		}
		// Someone else took the device between the two calls.
	}
	return -1, "", errors.New("loop: no free device after 32 tries")
}

// mountExt4 mounts the ext4 on dev and returns the detached mount.
func mountExt4(dev string) (int, error) {
	fsfd, err := unix.Fsopen("ext4", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen ext4: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "source", dev); err != nil {
		return -1, fmt.Errorf("fsconfig source: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("mount ext4 on %s: %w", dev, err)
	}
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	return mnt, nil
}

// loopsUnder returns the loop devices whose backing file is in dir.
func loopsUnder(dir string) ([]string, error) {
	paths, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // detached meanwhile
		}
		backing := strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
		if strings.HasPrefix(backing, dir+"/") {
			devs = append(devs, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(p))))
		}
	}
	return devs, nil
}

// waitLoopsGone waits until no loop device is backed by a file in dir. The
// devices clear themselves once the sandbox's mounts are gone; a device
// still there after a while is told to clear (which it does when its last
// user closes it).
func waitLoopsGone(ctx context.Context, dir string) error {
	nudged := false
	start := time.Now()
	err := poll(ctx, func() (bool, error) {
		devs, err := loopsUnder(dir)
		if err != nil || len(devs) == 0 {
			return true, err
		}
		if !nudged && time.Since(start) > 2*time.Second {
			nudged = true
			for _, dev := range devs {
				clearLoop(dev)
			}
		}
		return false, nil
	})
	if err != nil {
		devs, _ := loopsUnder(dir)
		return fmt.Errorf("loop devices %v still in use: %w", devs, err)
	}
	return nil
}

func clearLoop(dev string) {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
	unix.Close(fd)
}

// diskUsage reports the size and use of the filesystem at path.
func diskUsage(path string) (used, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	total = int64(st.Blocks) * st.Bsize
	used = int64(st.Blocks-st.Bfree) * st.Bsize
	return used, total, nil
}
