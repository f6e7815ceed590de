package agent

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// cleanPath checks a path from a request: absolute, or "~" and "~/..."
// from home. It returns it cleaned; ".." above "/" stays at "/".
func cleanPath(p, home string) (string, error) {
	switch {
	case p == "":
		return "", invalidField("path", `query parameter "path" is missing; give an absolute path such as /home/user/file.txt`)
	case strings.ContainsRune(p, 0):
		return "", invalidField("path", "path contains a NUL byte")
	case p == "~":
		p = home
	case strings.HasPrefix(p, "~/"):
		p = home + "/" + p[2:]
	case !strings.HasPrefix(p, "/"):
		return "", invalidField("path", "path %q is not absolute; start it with / (or ~/ for the home directory)", p)
	}
	return path.Clean(p), nil
}

// openFile opens p like open(2) but refuses to go through /proc magic links
// (/proc/PID/root, /proc/PID/fd/N, ...). Ordinary symlinks are followed.
func openFile(p string, flags int, mode uint32) (*os.File, error) {
	fd, err := openat2(unix.AT_FDCWD, p, flags, mode)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// openat2 is openat2(2) with RESOLVE_NO_MAGICLINKS, retried on EAGAIN and
// EINTR; kernels before 5.6 get a plain openat.
func openat2(dirfd int, p string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: unix.RESOLVE_NO_MAGICLINKS}
	for range 16 {
		fd, err := unix.Openat2(dirfd, p, &how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOSYS):
			return unix.Openat(dirfd, p, flags|unix.O_CLOEXEC, mode)
		}
		return -1, err
	}
	return -1, unix.EAGAIN
}

// lstat returns the status of p itself (a symlink is not followed), with
// the directories on the way resolved like openFile does.
func lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, base := path.Split(p)
	if base == "" { // "/"
		dir, base = "/", "."
	}
	fd, err := openat2(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return st, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return st, nil
}

// mkdirAll makes p and its missing parents with mode 0755 and reports
// whether it made p. An existing directory is no error; an existing file at
// p or on the way is, as unix.ENOTDIR or unix.EEXIST.
func mkdirAll(p string) (bool, error) {
	fd, err := openat2(unix.AT_FDCWD, p, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == nil {
		unix.Close(fd)
		return false, nil
	}
	switch {
	case errors.Is(err, unix.ENOTDIR):
		// p is not a directory, or a parent is not: find out which.
		if _, serr := lstat(p); serr == nil {
			return false, &os.PathError{Op: "mkdir", Path: p, Err: unix.EEXIST}
		}
	case !errors.Is(err, unix.ENOENT):
		return false, &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	parent := path.Dir(p)
	if parent != p {
		if _, err := mkdirAll(parent); err != nil {
			return false, err
		}
	}
	pfd, err := openat2(unix.AT_FDCWD, parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return false, &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, path.Base(p), 0o755); err != nil {
		if errors.Is(err, unix.EEXIST) {
			var st unix.Stat_t
			if unix.Fstatat(pfd, path.Base(p), &st, 0) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return false, nil // made by someone else meanwhile
			}
		}
		return false, &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	return true, nil
}

// entryOf describes the file p whose status is st.
func entryOf(p string, st *unix.Stat_t) apitype.FileEntry {
	e := apitype.FileEntry{
		Name:  path.Base(p),
		Path:  p,
		Size:  st.Size,
		Mode:  st.Mode & 0o7777,
		MTime: time.Unix(st.Mtim.Unix()).UTC(),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = apitype.FileTypeFile
	case unix.S_IFDIR:
		e.Type = apitype.FileTypeDir
	case unix.S_IFLNK:
		e.Type = apitype.FileTypeSymlink
	default:
		e.Type = apitype.FileTypeOther
	}
	return e
}

// fileError turns a failed file operation into an error for the client.
func fileError(verb, p string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("agent: %s %s: %w", verb, p, err)
	}
	msg := func(format string, args ...any) string { return fmt.Sprintf(format, args...) }
	switch errno {
	case unix.ENOENT:
		return &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "path", Message: msg("%s: no such file or directory", p)}
	case unix.ENOTDIR:
		return &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "path", Message: msg("%s: a parent of it is not a directory", p)}
	case unix.EACCES, unix.EPERM:
		return invalidField("path", "%s: permission denied: the user may not %s it", p, verb)
	case unix.EISDIR:
		return invalidField("path", "%s is a directory; list it with GET /v1/files/list", p)
	case unix.EEXIST:
		return &desktop.Error{Code: desktop.CodeConflict, Index: -1, Field: "path", Message: msg("%s already exists and is not a directory", p)}
	case unix.ELOOP:
		return invalidField("path", "%s: too many levels of symlinks, or a /proc magic link (refused)", p)
	case unix.ENAMETOOLONG:
		return invalidField("path", "%s: name too long", p)
	case unix.EROFS:
		return invalidField("path", "%s: read-only file system", p)
	case unix.ENOSPC, unix.EDQUOT, unix.EFBIG:
		return &desktop.Error{Code: desktop.CodeTooLarge, Index: -1, Field: "path", Message: msg("%s: %v", p, errno)}
	case unix.ENOTEMPTY:
		return &desktop.Error{Code: desktop.CodeConflict, Index: -1, Field: "path", Message: msg("%s: directory not empty", p)}
	}
	return fmt.Errorf("agent: %s %s: %w", verb, p, err)
}
