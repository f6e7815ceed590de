package envd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	fspb "github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem"
	"github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem/filesystemconnect"
)

// Limits of the filesystem service.
const (
	maxListDepth   = 64
	maxListEntries = 100_000
	// xattrPrefix is where file metadata (X-Metadata-<key> on upload) is
	// kept, one extended attribute per key.
	xattrPrefix = "user.e2b."
)

var _ filesystemconnect.FilesystemHandler = (*fileSystem)(nil)

// fileSystem is the filesystem service.
type fileSystem struct {
	s *Service

	names sync.Map // "u123" / "g123" -> user or group name

	mu       sync.Mutex
	watchers map[string]*pollWatcher
	closed   bool
}

func newFileSystem(s *Service) *fileSystem {
	return &fileSystem{s: s, watchers: map[string]*pollWatcher{}}
}

// resolvePath resolves a path of a request: "~" and "~/..." are in home,
// relative paths are from home.
func resolvePath(p, home string) string {
	switch {
	case p == "~":
		p = home
	case strings.HasPrefix(p, "~/"):
		p = path.Join(home, p[2:])
	case !path.IsAbs(p):
		p = path.Join(home, p)
	}
	return path.Clean(p)
}

// target resolves the user and path of an RPC.
func (f *fileSystem) target(h http.Header, p string) (*User, string, error) {
	u, err := f.s.rpcUser(h)
	if err != nil {
		return nil, "", err
	}
	if strings.ContainsRune(p, 0) {
		return nil, "", connect.NewError(connect.CodeInvalidArgument, errors.New("path contains a NUL byte"))
	}
	return u, resolvePath(p, u.Home), nil
}

// fsError maps a filesystem error on p to a Connect error.
func fsError(op, p string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := connect.CodeInternal
	msg := fmt.Sprintf("%s %s: %v", op, p, unwrapPathError(err))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		code, msg = connect.CodeNotFound, fmt.Sprintf("path '%s' does not exist", p)
	case errors.Is(err, fs.ErrExist):
		code = connect.CodeAlreadyExists
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		code = connect.CodePermissionDenied
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EINVAL),
		errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.ELOOP):
		code = connect.CodeInvalidArgument
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		code = connect.CodeResourceExhausted
	}
	return connect.NewError(code, errors.New(msg))
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// entry describes p. A symlink gets the type of its target (unspecified
// when dangling) and its target in SymlinkTarget.
func (f *fileSystem) entry(p string) (*fspb.EntryInfo, error) {
	lst, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	return f.entryOf(p, lst), nil
}

func (f *fileSystem) entryOf(p string, lst fs.FileInfo) *fspb.EntryInfo {
	st := lst
	e := &fspb.EntryInfo{Name: path.Base(p), Path: p}
	if lst.Mode()&fs.ModeSymlink != 0 {
		if target, err := os.Readlink(p); err == nil {
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			e.SymlinkTarget = &target
		}
		if tst, err := os.Stat(p); err == nil {
			st = tst
		} else {
			st = nil
		}
	}
	if st != nil {
		switch {
		case st.IsDir():
			e.Type = fspb.FileType_FILE_TYPE_DIRECTORY
		case st.Mode().IsRegular():
			e.Type = fspb.FileType_FILE_TYPE_FILE
		}
	} else {
		st = lst
	}
	e.Size = st.Size()
	e.Mode = uint32(st.Mode().Perm())
	e.Permissions = st.Mode().String()
	e.ModifiedTime = timestamppb.New(st.ModTime())
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		e.Owner = f.name("u", sys.Uid)
		e.Group = f.name("g", sys.Gid)
	}
	e.Metadata = readMetadata(p)
	return e
}

// name is the name of a user ("u") or group ("g") id, or the id itself.
func (f *fileSystem) name(kind string, id uint32) string {
	key := kind + strconv.FormatUint(uint64(id), 10)
	if v, ok := f.names.Load(key); ok {
		return v.(string)
	}
	s := strconv.FormatUint(uint64(id), 10)
	if kind == "u" {
		if u, err := user.LookupId(s); err == nil {
			s = u.Username
		}
	} else if g, err := user.LookupGroupId(s); err == nil {
		s = g.Name
	}
	f.names.Store(key, s)
	return s
}

// readMetadata reads the metadata kept in p's extended attributes.
func readMetadata(p string) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	var md map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		key, ok := strings.CutPrefix(name, xattrPrefix)
		if !ok {
			continue
		}
		val := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			continue
		}
		if md == nil {
			md = map[string]string{}
		}
		md[key] = string(val[:m])
	}
	return md
}

func (f *fileSystem) Stat(ctx context.Context, req *connect.Request[fspb.StatRequest]) (*connect.Response[fspb.StatResponse], error) {
	u, p, err := f.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	var e *fspb.EntryInfo
	if err := u.do(func() (err error) { e, err = f.entry(p); return err }); err != nil {
		return nil, fsError("stat", p, err)
	}
	return connect.NewResponse(&fspb.StatResponse{Entry: e}), nil
}

func (f *fileSystem) MakeDir(ctx context.Context, req *connect.Request[fspb.MakeDirRequest]) (*connect.Response[fspb.MakeDirResponse], error) {
	u, p, err := f.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	var e *fspb.EntryInfo
	err = u.do(func() error {
		if st, err := os.Stat(p); err == nil {
			if st.IsDir() {
				return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("directory '%s' already exists", p))
			}
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path '%s' already exists and is not a directory", p))
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		var err error
		e, err = f.entry(p)
		return err
	})
	if err != nil {
		return nil, fsError("make directory", p, err)
	}
	return connect.NewResponse(&fspb.MakeDirResponse{Entry: e}), nil
}

func (f *fileSystem) Move(ctx context.Context, req *connect.Request[fspb.MoveRequest]) (*connect.Response[fspb.MoveResponse], error) {
	u, src, err := f.target(req.Header(), req.Msg.GetSource())
	if err != nil {
		return nil, err
	}
	dst := resolvePath(req.Msg.GetDestination(), u.Home)
	if strings.ContainsRune(dst, 0) {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("destination contains a NUL byte"))
	}
	var e *fspb.EntryInfo
	err = u.do(func() error {
		if _, err := os.Lstat(src); err != nil {
			return err
		}
		if err := os.MkdirAll(path.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		var err error
		e, err = f.entry(dst)
		return err
	})
	if err != nil {
		return nil, fsError("move", src, err)
	}
	return connect.NewResponse(&fspb.MoveResponse{Entry: e}), nil
}

func (f *fileSystem) ListDir(ctx context.Context, req *connect.Request[fspb.ListDirRequest]) (*connect.Response[fspb.ListDirResponse], error) {
	u, p, err := f.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	depth := int(req.Msg.GetDepth())
	if depth == 0 {
		depth = 1
	}
	if depth > maxListDepth {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("depth %d is over the limit of %d", depth, maxListDepth))
	}
	var entries []*fspb.EntryInfo
	err = u.do(func() error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("path '%s' is not a directory", p))
		}
		return f.list(ctx, p, depth, &entries)
	})
	if err != nil {
		return nil, fsError("list", p, err)
	}
	return connect.NewResponse(&fspb.ListDirResponse{Entries: entries}), nil
}

// list appends the entries of dir, and of its subdirectories down to
// depth, to out. Symlinks are listed, not followed; subdirectories that
// cannot be read are listed without their contents.
func (f *fileSystem) list(ctx context.Context, dir string, depth int, out *[]*fspb.EntryInfo) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if len(*out) >= maxListEntries {
			return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("more than %d entries; list with a smaller depth", maxListEntries))
		}
		if err := ctx.Err(); err != nil {
			return connect.NewError(connect.CodeCanceled, err)
		}
		child := filepath.Join(dir, de.Name())
		info, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		*out = append(*out, f.entryOf(child, info))
		if de.IsDir() && depth > 1 {
			if err := f.list(ctx, child, depth-1, out); err != nil && !errors.Is(err, fs.ErrPermission) {
				var ce *connect.Error
				if errors.As(err, &ce) {
					return err
				}
			}
		}
	}
	return nil
}

func (f *fileSystem) Remove(ctx context.Context, req *connect.Request[fspb.RemoveRequest]) (*connect.Response[fspb.RemoveResponse], error) {
	u, p, err := f.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("refusing to remove /"))
	}
	if err := u.do(func() error { return os.RemoveAll(p) }); err != nil {
		return nil, fsError("remove", p, err)
	}
	return connect.NewResponse(&fspb.RemoveResponse{}), nil
}

// close stops the polling watchers.
func (f *fileSystem) close() {
	f.mu.Lock()
	f.closed = true
	ws := f.watchers
	f.watchers = map[string]*pollWatcher{}
	f.mu.Unlock()
	for _, w := range ws {
		w.stop()
	}
}
