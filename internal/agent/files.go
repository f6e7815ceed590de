package agent

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Limits of the file API.
const (
	maxFileSize    = 1 << 30 // bytes one PUT may write
	maxListDepth   = 32
	maxListEntries = 100_000
)

// fileRoutes adds the file API. Every operation acts as the account of the
// request (the desktop user unless ?user=root), so the kernel checks its
// permissions and owns what it creates; see account.do.
func (a *Agent) fileRoutes(handle func(pattern string, h handlerFunc)) {
	handle("GET /v1/files", a.handleReadFile)
	handle("PUT /v1/files", a.handleWriteFile)
	handle("DELETE /v1/files", a.handleRemoveFile)
	handle("GET /v1/files/list", a.handleListDir)
	handle("GET /v1/files/stat", a.handleStat)
	handle("POST /v1/files/mkdir", a.handleMkdir)
}

// fileTarget reads the account and the cleaned path of a file request.
func (a *Agent) fileTarget(r *http.Request) (*account, string, error) {
	q := r.URL.Query()
	acct, err := a.account(q.Get("user"))
	if err != nil {
		return nil, "", err
	}
	p, err := cleanPath(q.Get("path"), acct.homeIn(a.desktopEnv()))
	if err != nil {
		return nil, "", err
	}
	return acct, p, nil
}

func (a *Agent) handleReadFile(w http.ResponseWriter, r *http.Request) error {
	acct, p, err := a.fileTarget(r)
	if err != nil {
		return err
	}
	var (
		f  *os.File
		st unix.Stat_t
	)
	err = acct.do(func() error {
		// O_NONBLOCK: opening a FIFO must not wait for a writer.
		fd, err := openat2(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return unix.EISDIR
			}
			return errNotRegular
		}
		unix.SetNonblock(fd, false)
		f = os.NewFile(uintptr(fd), p)
		return nil
	})
	if errors.Is(err, errNotRegular) {
		return invalidField("path", "%s is not a regular file", p)
	}
	if err != nil {
		return fileError("read", p, err)
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "no-store")
	if st.Size == 0 {
		// Files in /proc and /sys say 0 and have content: send what reads.
		if r.Method != http.MethodHead {
			io.Copy(w, f)
		}
		return nil
	}
	http.ServeContent(w, r, "", time.Unix(st.Mtim.Unix()), f)
	return nil
}

var errNotRegular = errors.New("not a regular file")

func (a *Agent) handleWriteFile(w http.ResponseWriter, r *http.Request) error {
	acct, p, err := a.fileTarget(r)
	if err != nil {
		return err
	}
	if r.ContentLength > maxFileSize {
		return desktop.Errorf(desktop.CodeTooLarge, "the file is %d bytes, over the limit of %d (1 GiB)", r.ContentLength, maxFileSize)
	}
	if p == "/" {
		return invalidField("path", "/ is a directory")
	}
	var (
		f       *os.File
		created bool
	)
	err = acct.do(func() error {
		if _, err := mkdirAll(path.Dir(p)); err != nil {
			return err
		}
		fd, err := openat2(unix.AT_FDCWD, p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
		if errors.Is(err, unix.EEXIST) {
			fd, err = openat2(unix.AT_FDCWD, p, unix.O_WRONLY|unix.O_NONBLOCK, 0)
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				unix.Close(fd)
				return errNotRegular
			}
			if err := unix.Ftruncate(fd, 0); err != nil {
				unix.Close(fd)
				return err
			}
			unix.SetNonblock(fd, false)
		} else if err != nil {
			return err
		} else {
			created = true
		}
		f = os.NewFile(uintptr(fd), p)
		return nil
	})
	if errors.Is(err, errNotRegular) {
		return invalidField("path", "%s exists and is not a regular file", p)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Op == "mkdir" {
			return fileError("create the directories of", pe.Path, pe.Err)
		}
		return fileError("write", p, err)
	}
	n, copyErr := io.Copy(f, io.LimitReader(r.Body, maxFileSize+1))
	closeErr := f.Close()
	var fail error
	switch {
	case n > maxFileSize:
		fail = desktop.Errorf(desktop.CodeTooLarge, "the file is over the limit of %d bytes (1 GiB)", maxFileSize)
	case copyErr != nil:
		var werr *os.PathError
		if errors.As(copyErr, &werr) {
			fail = fileError("write", p, werr.Err)
		} else {
			fail = desktop.Errorf(desktop.CodeBadRequest, "reading the request body failed after %d bytes: %v", n, copyErr)
		}
	case closeErr != nil:
		fail = fileError("write", p, closeErr)
	}
	if fail != nil {
		if created {
			acct.do(func() error { return unix.Unlink(p) })
		} else if de := (*desktop.Error)(nil); errors.As(fail, &de) {
			de.Message += "; the file is left incomplete"
		}
		return fail
	}
	return writeJSON(w, http.StatusOK, apitype.WriteInfo{Path: p, Size: n})
}

func (a *Agent) handleRemoveFile(w http.ResponseWriter, r *http.Request) error {
	acct, p, err := a.fileTarget(r)
	if err != nil {
		return err
	}
	if p == "/" {
		return invalidField("path", "refusing to remove /")
	}
	err = acct.do(func() error {
		st, err := lstat(p)
		if err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return os.RemoveAll(p)
		}
		fd, err := openat2(unix.AT_FDCWD, path.Dir(p), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Unlinkat(fd, path.Base(p), 0)
	})
	if err != nil {
		return fileError("remove", p, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *Agent) handleStat(w http.ResponseWriter, r *http.Request) error {
	acct, p, err := a.fileTarget(r)
	if err != nil {
		return err
	}
	var e apitype.FileEntry
	err = acct.do(func() error {
		st, err := lstat(p)
		if err != nil {
			return err
		}
		e = entryOf(p, &st)
		if e.Type == "symlink" {
			e.SymlinkTarget, _ = os.Readlink(p)
		}
		return nil
	})
	if err != nil {
		return fileError("stat", p, err)
	}
	return writeJSON(w, http.StatusOK, e)
}

func (a *Agent) handleMkdir(w http.ResponseWriter, r *http.Request) error {
	acct, p, err := a.fileTarget(r)
	if err != nil {
		return err
	}
	var (
		created bool
		e       apitype.FileEntry
	)
	err = acct.do(func() error {
		if created, err = mkdirAll(p); err != nil {
			return err
		}
		st, err := lstat(p)
		e = entryOf(p, &st)
		return err
	})
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path != p {
			return fileError("create the directories of", pe.Path, pe.Err)
		}
		return fileError("create", p, err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeJSON(w, status, e)
}

func (a *Agent) handleListDir(w http.ResponseWriter, r *http.Request) error {
	acct, p, err := a.fileTarget(r)
	if err != nil {
		return err
	}
	depth := 1
	if s := r.URL.Query().Get("depth"); s != "" {
		depth, err = strconv.Atoi(s)
		if err != nil || depth < 1 || depth > maxListDepth {
			return invalidField("depth", "depth=%q must be a whole number from 1 to %d", s, maxListDepth)
		}
	}
	entries := []apitype.FileEntry{}
	err = acct.do(func() error {
		fd, err := openat2(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if errors.Is(err, unix.ENOTDIR) {
			if st, serr := lstat(p); serr == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return errNotDir
			}
		}
		if err != nil {
			return err
		}
		return listDir(fd, p, depth, &entries)
	})
	if errors.Is(err, errTooMany) {
		return desktop.Errorf(desktop.CodeTooLarge, "%s holds more than %d entries at depth %d; list with a smaller depth or a deeper path", p, maxListEntries, depth)
	}
	if errors.Is(err, errNotDir) {
		return invalidField("path", "%s is not a directory; read it with GET /v1/files", p)
	}
	if err != nil {
		return fileError("list", p, err)
	}
	return writeJSON(w, http.StatusOK, entries)
}

var (
	errTooMany = errors.New("too many entries")
	errNotDir  = errors.New("not a directory")
)

// listDir appends the entries of the directory open as fd (named p) to
// out, and those of its subdirectories down to depth; it closes fd.
// Symlinks are listed, not followed. Subdirectories the user may not read
// are listed without their contents.
func listDir(fd int, p string, depth int, out *[]apitype.FileEntry) error {
	dir := os.NewFile(uintptr(fd), p)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, name := range names {
		if len(*out) >= maxListEntries {
			return errTooMany
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		child := path.Join(p, name)
		e := entryOf(child, &st)
		if e.Type == "symlink" {
			buf := make([]byte, unix.PathMax)
			if n, err := unix.Readlinkat(fd, name, buf); err == nil {
				e.SymlinkTarget = string(buf[:n])
			}
		}
		*out = append(*out, e)
		if e.Type == "dir" && depth > 1 {
			cfd, err := openat2(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				continue
			}
			if err := listDir(cfd, child, depth-1, out); err != nil {
				return err
			}
		}
	}
	return nil
}
