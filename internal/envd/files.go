package envd

import (
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Signing operations of /files URLs.
const (
	opRead  = "read"
	opWrite = "write"
)

// Sign returns the signature of a /files URL for op ("read" or "write")
// on path as username ("" for the default user), valid until expires
// (zero: no expiry), with the access token as the key: "v1_" and the
// unpadded base64 of sha256("path:op:username:token[:expires]").
func Sign(path, op, username, token string, expires time.Time) string {
	s := path + ":" + op + ":" + username + ":" + token
	if !expires.IsZero() {
		s += ":" + strconv.FormatInt(expires.Unix(), 10)
	}
	sum := sha256.Sum256([]byte(s))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// FileOp is the signing operation of a /files request by its method: "read"
// for GET and HEAD, "write" for POST; ok is false for other methods.
func FileOp(method string) (op string, ok bool) {
	switch method {
	case http.MethodGet, http.MethodHead:
		return opRead, true
	case http.MethodPost:
		return opWrite, true
	}
	return "", false
}

// FileSignature is the signature of a signed /files URL, as its query
// carries it.
type FileSignature struct {
	Sig      string    // signature
	Path     string    // path
	Username string    // username
	Expires  time.Time // signature_expiration; zero: none
}

// ParseFileSignature reads the signature of a /files query; ok is false
// when the query has none.
func ParseFileSignature(q url.Values) (sig FileSignature, ok bool, err error) {
	sig = FileSignature{Sig: q.Get("signature"), Path: q.Get("path"), Username: q.Get("username")}
	if sig.Sig == "" {
		return sig, false, nil
	}
	if e := q.Get("signature_expiration"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return sig, true, errors.New("signature_expiration is not a unix time")
		}
		sig.Expires = time.Unix(n, 0)
	}
	return sig, true, nil
}

// Matches reports whether sig was made for op with token (expiry aside).
func (sig FileSignature) Matches(op, token string) bool {
	want := Sign(sig.Path, op, sig.Username, token, sig.Expires)
	return subtle.ConstantTimeCompare([]byte(sig.Sig), []byte(want)) == 1
}

// httpError is the JSON error body of the plain HTTP routes.
type httpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeHTTPError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Del("Content-Disposition")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(httpError{Code: status, Message: msg})
}

// filesAuth checks the token or the signature of a /files request for op.
func (s *Service) filesAuth(r *http.Request, op string) error {
	if s.cfg.Token == "" || tokenOK(r.Header, s.cfg.Token) {
		return nil
	}
	sig, signed, err := ParseFileSignature(r.URL.Query())
	switch {
	case err != nil:
		return errors.New("unauthorized access: " + err.Error())
	case !signed:
		return errUnauthorized
	case !sig.Expires.IsZero() && time.Now().After(sig.Expires):
		return errors.New("unauthorized access: the signature has expired")
	case !sig.Matches(op, s.cfg.Token):
		return errors.New("unauthorized access: the signature does not match")
	}
	return nil
}

// fileStatus maps a filesystem error on p to an HTTP status and message.
func fileStatus(op, p string, err error) (int, string) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound, fmt.Sprintf("path '%s' does not exist", p)
	case errors.Is(err, unix.EISDIR):
		return http.StatusBadRequest, fmt.Sprintf("path '%s' is a directory", p)
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ENAMETOOLONG), errors.Is(err, unix.ELOOP):
		return http.StatusBadRequest, fmt.Sprintf("%s %s: %v", op, p, unwrapPathError(err))
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.EROFS):
		return http.StatusForbidden, fmt.Sprintf("%s %s: %v", op, p, unwrapPathError(err))
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return http.StatusInsufficientStorage, fmt.Sprintf("%s %s: not enough disk space", op, p)
	}
	return http.StatusInternalServerError, fmt.Sprintf("%s %s: %v", op, p, unwrapPathError(err))
}

// filesTarget authorises a /files request and resolves its user and path.
func (s *Service) filesTarget(w http.ResponseWriter, r *http.Request, op string) (*User, string, bool) {
	if err := s.filesAuth(r, op); err != nil {
		writeHTTPError(w, http.StatusUnauthorized, err.Error())
		return nil, "", false
	}
	q := r.URL.Query()
	u, err := s.user(q.Get("username"))
	if err != nil {
		writeHTTPError(w, http.StatusUnauthorized, fmt.Sprintf("invalid user %q", q.Get("username")))
		return nil, "", false
	}
	p := q.Get("path")
	if strings.ContainsRune(p, 0) {
		writeHTTPError(w, http.StatusBadRequest, "path contains a NUL byte")
		return nil, "", false
	}
	if p == "" {
		return u, "", true
	}
	return u, resolvePath(p, u.Home), true
}

func (s *Service) handleDownload(w http.ResponseWriter, r *http.Request) {
	u, p, ok := s.filesTarget(w, r, opRead)
	if !ok {
		return
	}
	if p == "" {
		writeHTTPError(w, http.StatusBadRequest, "query parameter path is required")
		return
	}
	var f *os.File
	err := u.do(func() error {
		var err error
		// O_NONBLOCK: opening a FIFO must not wait for a writer.
		f, err = os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err == nil && st.IsDir() {
			err = unix.EISDIR
		} else if err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file: %w", unix.EINVAL)
		}
		if err != nil {
			f.Close()
		}
		return err
	})
	if err != nil {
		status, msg := fileStatus("read", p, err)
		if errors.Is(err, unix.EINVAL) {
			status, msg = http.StatusBadRequest, fmt.Sprintf("path '%s' is not a regular file", p)
		}
		writeHTTPError(w, status, msg)
		return
	}
	defer f.Close()
	unix.SetNonblock(int(f.Fd()), false)
	st, err := f.Stat()
	if err != nil {
		writeHTTPError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": path.Base(p)}))
	h.Set("Cache-Control", "no-store")
	if st.Size() == 0 {
		// Files in /proc and /sys say 0 and have content: send what reads.
		if r.Method != http.MethodHead {
			io.Copy(w, f)
		}
		return
	}
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// uploaded is one file of the answer to POST /files.
type uploaded struct {
	Path     string            `json:"path"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func (s *Service) handleUpload(w http.ResponseWriter, r *http.Request) {
	u, p, ok := s.filesTarget(w, r, opWrite)
	if !ok {
		return
	}
	body := io.Reader(r.Body)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, "the body is not valid gzip: "+err.Error())
			return
		}
		defer zr.Close()
		body = zr
	default:
		writeHTTPError(w, http.StatusBadRequest, fmt.Sprintf("unsupported Content-Encoding %q; use gzip or none", enc))
		return
	}
	md, err := metadataHeaders(r.Header)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error())
		return
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var out []uploaded
	if mt == "multipart/form-data" {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				writeHTTPError(w, http.StatusBadRequest, "bad multipart body: "+err.Error())
				return
			}
			if part.FormName() != "file" {
				part.Close()
				continue
			}
			target := p
			if target == "" {
				name := partFileName(part)
				if name == "" {
					writeHTTPError(w, http.StatusBadRequest, "a file part needs a filename, or give the path query parameter")
					return
				}
				target = resolvePath(name, u.Home)
			}
			res, status, msg := s.writeFile(u, target, part, md)
			part.Close()
			if status != 0 {
				writeHTTPError(w, status, msg)
				return
			}
			out = append(out, res)
		}
	} else {
		if p == "" {
			writeHTTPError(w, http.StatusBadRequest, "query parameter path is required for an application/octet-stream upload")
			return
		}
		res, status, msg := s.writeFile(u, p, body, md)
		if status != 0 {
			writeHTTPError(w, status, msg)
			return
		}
		out = append(out, res)
	}
	if len(out) == 0 {
		writeHTTPError(w, http.StatusBadRequest, `no file in the body: send multipart parts named "file" or an application/octet-stream body`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// partFileName is the filename of a multipart part as sent: the SDK puts
// the whole target path there (multipart.Part.FileName keeps only the base).
func partFileName(part *multipart.Part) string {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

// metadataHeaders reads the X-Metadata-<key> headers.
func metadataHeaders(h http.Header) (map[string]string, error) {
	var md map[string]string
	for k, vs := range h {
		key, ok := strings.CutPrefix(strings.ToLower(k), "x-metadata-")
		if !ok || len(vs) == 0 {
			continue
		}
		if key == "" || len(key) > 200 || len(vs[0]) > 4096 {
			return nil, fmt.Errorf("metadata %q is empty or too long", k)
		}
		if md == nil {
			md = map[string]string{}
		}
		md[key] = vs[0]
	}
	return md, nil
}

// writeFile writes src to p as u, creating the parent directories, and
// keeps md in extended attributes. A non-zero status reports a failure.
func (s *Service) writeFile(u *User, p string, src io.Reader, md map[string]string) (uploaded, int, string) {
	var f *os.File
	err := u.do(func() error {
		if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NONBLOCK, 0o644)
		if err != nil {
			return err
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return fmt.Errorf("not a regular file: %w", unix.EISDIR)
		}
		return nil
	})
	if err != nil {
		status, msg := fileStatus("write", p, err)
		return uploaded{}, status, msg
	}
	unix.SetNonblock(int(f.Fd()), false)
	_, copyErr := io.Copy(f, src)
	closeErr := f.Close()
	if err := cmp.Or(copyErr, closeErr); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			status, msg := fileStatus("write", p, err)
			return uploaded{}, status, msg
		}
		return uploaded{}, http.StatusBadRequest, fmt.Sprintf("reading the upload of %s failed: %v", p, err)
	}
	for k, v := range md {
		if err := unix.Setxattr(p, xattrPrefix+k, []byte(v), 0); err != nil {
			status, msg := fileStatus("set metadata on", p, &fs.PathError{Op: "setxattr", Path: p, Err: err})
			if errors.Is(err, unix.ENOTSUP) {
				status = http.StatusBadRequest
				msg = fmt.Sprintf("the filesystem of %s does not keep metadata", p)
			}
			return uploaded{}, status, msg
		}
	}
	return uploaded{Path: p, Name: path.Base(p), Type: "file", Metadata: md}, 0, ""
}
