package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Files reads and writes files on the desktop, acting as the desktop user:
// the user's permissions apply and what it creates is the user's. Paths are
// absolute, or "~/..." in the user's home. Get it as Sandbox.Files; AsUser
// acts as root instead.
type Files struct {
	s    *Sandbox
	user string
}

// AsUser returns a Files that acts as user: "root", or "user" for the
// desktop user.
func (f *Files) AsUser(user string) *Files {
	return &Files{s: f.s, user: user}
}

// FileEntry describes a file on the desktop.
type FileEntry struct {
	Name string
	Path string
	// Type is "file", "dir", "symlink" or "other" (apitype.FileTypeFile,
	// ...).
	Type string
	Size int64
	// Mode holds the permission bits and ModeSetuid, ModeSetgid and
	// ModeSticky.
	Mode          fs.FileMode
	ModTime       time.Time
	SymlinkTarget string
}

// fileEntry turns an entry as the agent sends it into a FileEntry.
func fileEntry(w *apitype.FileEntry) FileEntry {
	m := fs.FileMode(w.Mode & 0o777)
	for _, b := range []struct {
		unix uint32
		mode fs.FileMode
	}{{0o4000, fs.ModeSetuid}, {0o2000, fs.ModeSetgid}, {0o1000, fs.ModeSticky}} {
		if w.Mode&b.unix != 0 {
			m |= b.mode
		}
	}
	return FileEntry{Name: w.Name, Path: w.Path, Type: w.Type, Size: w.Size, Mode: m, ModTime: w.MTime, SymlinkTarget: w.SymlinkTarget}
}

// WriteInfo is what a write made: the file's path and size.
type WriteInfo = apitype.WriteInfo

func (f *Files) query(path string, more ...string) url.Values {
	q := url.Values{"path": {path}}
	if f.user != "" {
		q.Set("user", f.user)
	}
	for i := 0; i+1 < len(more); i += 2 {
		q.Set(more[i], more[i+1])
	}
	return q
}

func checkPath(path string) error {
	if path == "" {
		return &desktop.Error{Code: desktop.CodeInvalid, Field: "path", Index: -1, Message: "the path is empty"}
	}
	return nil
}

// Open returns the content of the file at path as a stream; close it when
// done. A missing file gives an error of class ErrNotFound.
func (f *Files) Open(ctx context.Context, path string) (io.ReadCloser, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	const p = "/v1/files"
	resp, err := f.s.t.sendRaw(ctx, http.MethodGet, p, f.query(path), nil, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer closeBody(resp.Body)
		return nil, f.s.t.statusError(http.MethodGet, p, resp)
	}
	return resp.Body, nil
}

// Read returns the content of the file at path.
func (f *Files) Read(ctx context.Context, path string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := f.ReadTo(ctx, path, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadTo copies the content of the file at path to w and returns how many
// bytes it copied.
func (f *Files) ReadTo(ctx context.Context, path string, w io.Writer) (int64, error) {
	rc, err := f.Open(ctx, path)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, f.s.t.transportError(ctx, http.MethodGet, f.s.t.base+"/v1/files", err)
	}
	return n, nil
}

// Write writes data to the file at path, replacing what it held and making
// the directories on the way.
func (f *Files) Write(ctx context.Context, path string, data []byte) (*WriteInfo, error) {
	return f.WriteFrom(ctx, path, bytes.NewReader(data))
}

// WriteFrom writes what r reads to the file at path, streaming: nothing is
// held in memory. Files are at most 1 GiB.
func (f *Files) WriteFrom(ctx context.Context, path string, r io.Reader) (*WriteInfo, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if r == nil {
		r = http.NoBody
	}
	const p = "/v1/files"
	resp, err := f.s.t.sendRaw(ctx, http.MethodPut, p, f.query(path), r, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, f.s.t.statusError(http.MethodPut, p, resp)
	}
	var info WriteInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, &desktop.Error{Code: desktop.CodeInternal, Index: -1,
			Message: fmt.Sprintf("client: PUT %s%s: %s answer is not the expected JSON: %v", f.s.t.base, p, resp.Status, err)}
	}
	return &info, nil
}

// List returns the entries of the directory at path, and those of its
// subdirectories down to depth (1: the directory itself; 0 means 1).
// Symlinks are listed, not followed.
func (f *Files) List(ctx context.Context, path string, depth int) ([]FileEntry, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if depth <= 0 {
		depth = 1
	}
	var wire []apitype.FileEntry
	if err := f.s.t.call(ctx, http.MethodGet, "/v1/files/list", f.query(path, "depth", strconv.Itoa(depth)), nil, &wire); err != nil {
		return nil, err
	}
	out := make([]FileEntry, len(wire))
	for i := range wire {
		out[i] = fileEntry(&wire[i])
	}
	return out, nil
}

// Stat describes the file at path itself (a symlink is not followed).
func (f *Files) Stat(ctx context.Context, path string) (*FileEntry, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	var w apitype.FileEntry
	if err := f.s.t.call(ctx, http.MethodGet, "/v1/files/stat", f.query(path), nil, &w); err != nil {
		return nil, err
	}
	e := fileEntry(&w)
	return &e, nil
}

// Exists reports whether something is at path.
func (f *Files) Exists(ctx context.Context, path string) (bool, error) {
	_, err := f.Stat(ctx, path)
	if errors.Is(err, desktop.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Remove removes the file at path, or the directory and all it holds. A
// missing path gives an error of class ErrNotFound.
func (f *Files) Remove(ctx context.Context, path string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	return f.s.t.call(ctx, http.MethodDelete, "/v1/files", f.query(path), nil, nil)
}

// MakeDir makes the directory at path and its parents, and reports whether
// it made it (false: it was there already). A file in the way gives an
// error of class ErrConflict.
func (f *Files) MakeDir(ctx context.Context, path string) (bool, error) {
	if err := checkPath(path); err != nil {
		return false, err
	}
	const p = "/v1/files/mkdir"
	resp, err := f.s.t.sendRaw(ctx, http.MethodPost, p, f.query(path), nil, "")
	if err != nil {
		return false, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode/100 != 2 {
		return false, f.s.t.statusError(http.MethodPost, p, resp)
	}
	return resp.StatusCode == http.StatusCreated, nil
}
