package local

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// idmappedTree returns a detached, read-only copy of the mount of dir
// whose files owned by host id n appear as owned by id n of the user
// namespace userns: host root's template becomes the sandbox root's,
// shared by every sandbox without a copy. Only host root can make it; the
// sandbox's init attaches it.
func idmappedTree(dir string, userns int) (int, error) {
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", dir, err)
	}
	attr := unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(userns),
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("idmap %s: %w", dir, err)
	}
	return tree, nil
}

// fileTree returns a detached, read-only bind mount of the file at path.
func fileTree(path string) (int, error) {
	tree, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("make %s read-only: %w", path, err)
	}
	return tree, nil
}
