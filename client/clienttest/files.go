package clienttest

import (
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// fakeFile is a file or directory on the imaginary disk.
type fakeFile struct {
	dir  bool
	data []byte
}

// homeDir is the desktop user's home on the imaginary disk.
const homeDir = "/home/user"

// File returns the content of the file at p on the imaginary disk.
func (a *Agent) File(p string) ([]byte, bool) {
	a.sys.mu.Lock()
	defer a.sys.mu.Unlock()
	f := a.sys.files[path.Clean(p)]
	if f == nil || f.dir {
		return nil, false
	}
	return append([]byte(nil), f.data...), true
}

// SetFile puts a file at p on the imaginary disk, with the directories on
// the way.
func (a *Agent) SetFile(p string, data []byte) {
	a.sys.mu.Lock()
	defer a.sys.mu.Unlock()
	a.sys.putLocked(path.Clean(p), data)
}

// putLocked stores a file and makes its parents.
func (s *system) putLocked(p string, data []byte) {
	for d := path.Dir(p); ; d = path.Dir(d) {
		if s.files[d] == nil {
			s.files[d] = &fakeFile{dir: true}
		}
		if d == "/" {
			break
		}
	}
	s.files[p] = &fakeFile{data: append([]byte(nil), data...)}
}

// target reads the path of a file request like the agent does.
func target(r *http.Request, more ...string) (string, error) {
	if err := checkQuery(r, append([]string{"path", "user"}, more...)...); err != nil {
		return "", err
	}
	q := r.URL.Query()
	if u := q.Get("user"); u != "" && u != "user" && u != "root" {
		return "", &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "user", Message: fmt.Sprintf("unknown user %q", u)}
	}
	p := q.Get("path")
	switch {
	case p == "":
		return "", &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "path", Message: `query parameter "path" is missing`}
	case p == "~":
		p = homeDir
	case strings.HasPrefix(p, "~/"):
		p = homeDir + p[1:]
	case !strings.HasPrefix(p, "/"):
		return "", &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "path", Message: fmt.Sprintf("path %q is not absolute", p)}
	}
	return path.Clean(p), nil
}

func notFound(p string) error {
	return &desktop.Error{Code: desktop.CodeNotFound, Index: -1, Field: "path", Message: p + ": no such file or directory"}
}

// lookupLocked returns the file at p, or the error for a missing one.
func (s *system) lookupLocked(p string) (*fakeFile, error) {
	f := s.files[p]
	if f == nil {
		return nil, notFound(p)
	}
	return f, nil
}

func (s *system) handleRead(w http.ResponseWriter, r *http.Request) {
	p, err := target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	f, err := s.lookupLocked(p)
	var data []byte
	if err == nil && f.dir {
		err = &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "path", Message: p + " is a directory"}
	} else if err == nil {
		data = f.data
	}
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func (s *system) handleWrite(w http.ResponseWriter, r *http.Request) {
	p, err := target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, desktop.Errorf(desktop.CodeBadRequest, "read the body: %v", err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[p]; f != nil && f.dir {
		writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "path", Message: p + " is a directory"})
		return
	}
	for d := path.Dir(p); ; d = path.Dir(d) {
		if f := s.files[d]; f != nil && !f.dir {
			writeError(w, &desktop.Error{Code: desktop.CodeConflict, Index: -1, Field: "path", Message: d + " already exists and is not a directory"})
			return
		}
		if d == "/" {
			break
		}
	}
	s.putLocked(p, data)
	writeJSON(w, http.StatusOK, apitype.WriteInfo{Path: p, Size: int64(len(data))})
}

func (s *system) handleRemove(w http.ResponseWriter, r *http.Request) {
	p, err := target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if p == "/" {
		writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "path", Message: "refusing to remove /"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.lookupLocked(p); err != nil {
		writeError(w, err)
		return
	}
	for k := range s.files {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(s.files, k)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *system) entryLocked(p string, f *fakeFile) apitype.FileEntry {
	e := apitype.FileEntry{Name: path.Base(p), Path: p, Type: apitype.FileTypeFile, Size: int64(len(f.data)), Mode: 0o644, MTime: s.now}
	if f.dir {
		e.Type, e.Size, e.Mode = apitype.FileTypeDir, 4096, 0o755
	}
	return e
}

func (s *system) handleStat(w http.ResponseWriter, r *http.Request) {
	p, err := target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.lookupLocked(p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.entryLocked(p, f))
}

func (s *system) handleListDir(w http.ResponseWriter, r *http.Request) {
	p, err := target(r, "depth")
	if err != nil {
		writeError(w, err)
		return
	}
	depth := 1
	if d := r.URL.Query().Get("depth"); d != "" {
		if depth, err = strconv.Atoi(d); err != nil || depth < 1 || depth > 32 {
			writeError(w, &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "depth", Message: fmt.Sprintf("depth=%q must be 1 to 32", d)})
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.lookupLocked(p)
	if err == nil && !f.dir {
		err = &desktop.Error{Code: desktop.CodeInvalid, Index: -1, Field: "path", Message: p + " is not a directory"}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	list := []apitype.FileEntry{}
	prefix := strings.TrimSuffix(p, "/") + "/"
	for k, f := range s.files {
		rest, ok := strings.CutPrefix(k, prefix)
		if ok && rest != "" && strings.Count(rest, "/") < depth {
			list = append(list, s.entryLocked(k, f))
		}
	}
	slices.SortFunc(list, func(a, b apitype.FileEntry) int { return strings.Compare(a.Path, b.Path) })
	writeJSON(w, http.StatusOK, list)
}

func (s *system) handleMkdir(w http.ResponseWriter, r *http.Request) {
	p, err := target(r)
	if err != nil {
		writeError(w, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for d := p; ; d = path.Dir(d) {
		f := s.files[d]
		if f != nil && !f.dir {
			writeError(w, &desktop.Error{Code: desktop.CodeConflict, Index: -1, Field: "path", Message: d + " already exists and is not a directory"})
			return
		}
		if f != nil {
			break
		}
		missing = append(missing, d)
	}
	for _, d := range missing {
		s.files[d] = &fakeFile{dir: true}
	}
	status := http.StatusOK
	if len(missing) > 0 {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.entryLocked(p, s.files[p]))
}
