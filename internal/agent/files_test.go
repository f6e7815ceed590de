package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
)

// fileURL is the URL of a file route for path p, with more query.
func fileURL(base, route, p string, more ...string) string {
	q := url.Values{"path": {p}}
	for i := 0; i+1 < len(more); i += 2 {
		q.Set(more[i], more[i+1])
	}
	return base + route + "?" + q.Encode()
}

// do sends a request with a raw body and returns status and body.
func do(t *testing.T, method, u string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestFilesRoundTrip(t *testing.T) {
	base := startBare(t, nil)
	dir := t.TempDir()
	data := make([]byte, 256*3)
	for i := range data {
		data[i] = byte(i)
	}
	file := dir + "/a/b/c.bin"
	status, raw := do(t, "PUT", fileURL(base, "/v1/files", file), bytes.NewReader(data))
	if status != 200 || string(raw) != fmt.Sprintf(`{"path":%q,"size":768}`+"\n", file) {
		t.Fatalf("PUT = %d %s", status, raw)
	}
	status, raw = do(t, "GET", fileURL(base, "/v1/files", file), nil)
	if status != 200 || !bytes.Equal(raw, data) {
		t.Fatalf("GET = %d, %d bytes; want 200 and the bytes written", status, len(raw))
	}
	// Overwrite with less: the file is truncated.
	if status, raw := do(t, "PUT", fileURL(base, "/v1/files", dir+"/a/../a/./b/c.bin"), strings.NewReader("hi")); status != 200 {
		t.Fatalf("PUT again = %d %s", status, raw)
	}
	if status, raw := do(t, "GET", fileURL(base, "/v1/files", file), nil); status != 200 || string(raw) != "hi" {
		t.Errorf("GET after overwrite = %d %q", status, raw)
	}
	// Empty files are files.
	if status, raw := do(t, "PUT", fileURL(base, "/v1/files", dir+"/empty"), nil); status != 200 {
		t.Errorf("PUT empty = %d %s", status, raw)
	}
	if status, raw := do(t, "GET", fileURL(base, "/v1/files", dir+"/empty"), nil); status != 200 || len(raw) != 0 {
		t.Errorf("GET empty = %d %q", status, raw)
	}

	// mkdir: 201 made, 200 there already, 409 a file in the way.
	for _, c := range []struct {
		p      string
		status int
	}{{dir + "/d/e", 201}, {dir + "/d/e", 200}, {dir + "/d", 200}, {file, 409}, {file + "/sub", 409}} {
		status, raw := do(t, "POST", fileURL(base, "/v1/files/mkdir", c.p), nil)
		if status != c.status {
			t.Errorf("mkdir %s = %d %s, want %d", c.p, status, raw, c.status)
		}
	}
	os.Symlink("a/b/c.bin", dir+"/link")

	var entries []apitype.FileEntry
	status, raw = do(t, "GET", fileURL(base, "/v1/files/list", dir, "depth", "2"), nil)
	if err := json.Unmarshal(raw, &entries); status != 200 || err != nil {
		t.Fatalf("list = %d %s", status, raw)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %s %d %o", e.Type, e.Path, e.Size, e.Mode))
	}
	slices.Sort(got)
	want := []string{"dir " + dir + "/a 0", "dir " + dir + "/a/b 0", "dir " + dir + "/d 0", "dir " + dir + "/d/e 0",
		"file " + dir + "/empty 0 644", "symlink " + dir + "/link 9 777"}
	for i := range got {
		if strings.HasPrefix(got[i], "dir ") { // sizes and modes of directories vary
			got[i] = strings.Join(strings.Fields(got[i])[:2], " ") + " 0"
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("list depth 2:\n got %q\nwant %q", got, want)
	}
	for _, e := range entries {
		if e.Type == "symlink" && (e.SymlinkTarget != "a/b/c.bin" || e.Name != "link") {
			t.Errorf("symlink entry = %+v", e)
		}
	}

	var st apitype.FileEntry
	status, raw = do(t, "GET", fileURL(base, "/v1/files/stat", file), nil)
	if err := json.Unmarshal(raw, &st); status != 200 || err != nil || st.Type != "file" || st.Size != 2 || st.Name != "c.bin" || st.MTime.IsZero() {
		t.Errorf("stat = %d %s", status, raw)
	}

	// Remove a file, then a whole tree.
	if status, raw := do(t, "DELETE", fileURL(base, "/v1/files", file), nil); status != 204 {
		t.Errorf("DELETE file = %d %s", status, raw)
	}
	if status, _ := do(t, "GET", fileURL(base, "/v1/files", file), nil); status != 404 {
		t.Errorf("GET removed = %d, want 404", status)
	}
	if status, raw := do(t, "DELETE", fileURL(base, "/v1/files", dir+"/a"), nil); status != 204 {
		t.Errorf("DELETE tree = %d %s", status, raw)
	}
	if _, err := os.Stat(dir + "/a"); !os.IsNotExist(err) {
		t.Errorf("the tree is still there: %v", err)
	}
	// The link is removed, not its target.
	os.WriteFile(dir+"/target", []byte("t"), 0o644)
	os.Symlink("target", dir+"/link2")
	if status, _ := do(t, "DELETE", fileURL(base, "/v1/files", dir+"/link2"), nil); status != 204 {
		t.Errorf("DELETE link = %d", status)
	}
	if _, err := os.Stat(dir + "/target"); err != nil {
		t.Errorf("removing a link removed its target: %v", err)
	}
}

func TestFilesRejectBadInput(t *testing.T) {
	base := startBare(t, nil)
	dir := t.TempDir()
	os.WriteFile(dir+"/f", []byte("x"), 0o644)
	syscall.Mkfifo(dir+"/fifo", 0o644)
	tests := []struct {
		name, method, u string
		status          int
		code, msg       string
	}{
		{"no path", "GET", base + "/v1/files", 400, desktop.CodeInvalid, "missing"},
		{"relative", "GET", fileURL(base, "/v1/files", "etc/passwd"), 400, desktop.CodeInvalid, "not absolute"},
		{"missing", "GET", fileURL(base, "/v1/files", dir+"/nope"), 404, desktop.CodeNotFound, "no such file"},
		{"file as a dir", "GET", fileURL(base, "/v1/files", dir+"/f/x"), 404, desktop.CodeNotFound, "not a directory"},
		{"read a dir", "GET", fileURL(base, "/v1/files", dir), 400, desktop.CodeInvalid, "is a directory"},
		{"read a fifo", "GET", fileURL(base, "/v1/files", dir+"/fifo"), 400, desktop.CodeInvalid, "not a regular file"},
		{"write a dir", "PUT", fileURL(base, "/v1/files", dir), 400, desktop.CodeInvalid, "is a directory"},
		{"write under a file", "PUT", fileURL(base, "/v1/files", dir+"/f/x"), 409, desktop.CodeConflict, "not a directory"},
		{"list a file", "GET", fileURL(base, "/v1/files/list", dir+"/f"), 400, desktop.CodeInvalid, "not a directory"},
		{"list missing", "GET", fileURL(base, "/v1/files/list", dir+"/nope"), 404, desktop.CodeNotFound, ""},
		{"bad depth", "GET", fileURL(base, "/v1/files/list", dir, "depth", "0"), 400, desktop.CodeInvalid, "depth"},
		{"remove missing", "DELETE", fileURL(base, "/v1/files", dir+"/nope"), 404, desktop.CodeNotFound, ""},
		{"remove root", "DELETE", fileURL(base, "/v1/files", "/.."), 400, desktop.CodeInvalid, "refusing"},
		{"magic link", "GET", fileURL(base, "/v1/files", "/proc/self/root/etc/hostname"), 400, desktop.CodeInvalid, "magic link"},
		{"magic fd link", "GET", fileURL(base, "/v1/files", "/proc/self/cwd/"+dir+"/f"), 400, desktop.CodeInvalid, "magic link"},
		{"stat missing", "GET", fileURL(base, "/v1/files/stat", dir+"/nope"), 404, desktop.CodeNotFound, ""},
		{"unknown user", "GET", fileURL(base, "/v1/files", dir+"/f", "user", "bob"), 400, desktop.CodeInvalid, "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e, raw := call(t, tt.method, tt.u, "", "")
			if status != tt.status || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.msg) {
				t.Errorf("%s %s = %d %s, want %d %s containing %q", tt.method, tt.u, status, truncate(raw), tt.status, tt.code, tt.msg)
			}
		})
	}

	t.Run("too large", func(t *testing.T) {
		// Refused from the header, before a byte of the body is read.
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT /v1/files?path=%s/big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", dir, int64(maxFileSize)+1)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("PUT of 1 GiB + 1 = %s, want 413", resp.Status)
		}
		if _, err := os.Stat(dir + "/big"); !os.IsNotExist(err) {
			t.Errorf("a refused upload left a file: %v", err)
		}
	})
}

// pattern is a deterministic stream of n bytes.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// TestFilesStream moves 100 MB each way without holding it in memory.
func TestFilesStream(t *testing.T) {
	base := startBare(t, nil)
	const n = 100 << 20
	file := t.TempDir() + "/big.bin"
	want := sha256.New()
	io.Copy(want, &pattern{n: n})

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("PUT", fileURL(base, "/v1/files", file), io.NopCloser(&pattern{n: n})) // chunked
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"size":%d`, n)) {
		t.Fatalf("PUT = %s %s", resp.Status, b)
	}
	resp, err = http.Get(fileURL(base, "/v1/files", file))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	m, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if err != nil || m != n || !bytes.Equal(got.Sum(nil), want.Sum(nil)) || resp.ContentLength != n {
		t.Errorf("GET = %d bytes (Content-Length %d), %v; want the %d bytes written", m, resp.ContentLength, err, n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 40<<20 {
		t.Errorf("moving 2 x 100 MB allocated %d MB: something holds the file in memory", alloc>>20)
	}

	// A range, as http.ServeContent serves it.
	req, _ = http.NewRequest("GET", fileURL(base, "/v1/files", file), nil)
	req.Header.Set("Range", "bytes=1000-1009")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantPart := make([]byte, 10)
	p := &pattern{n: 1010, off: 1000}
	p.Read(wantPart)
	if resp.StatusCode != 206 || !bytes.Equal(part, wantPart) {
		t.Errorf("range = %s %x, want 206 %x", resp.Status, part, wantPart)
	}
}

// testUser returns the account "nobody" with a fresh home it owns.
func testUser(t *testing.T) *display.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	home, err := os.MkdirTemp("", "cubicle-home-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return &display.User{UID: 65534, GID: 65534, Name: "nobody", Home: home}
}

// TestActAsUser checks that commands and file operations run as the
// desktop user, and as root only when asked.
func TestActAsUser(t *testing.T) {
	u := testUser(t)
	base := startBare(t, u)

	res := runCmd(t, base, `{"cmd":["sh","-c","id -u; id -g; echo $HOME $USER; pwd"]}`)
	if want := fmt.Sprintf("65534\n65534\n%s nobody\n%s\n", u.Home, u.Home); string(res.stdout) != want {
		t.Errorf("as the user: %q, want %q", res.stdout, want)
	}
	res = runCmd(t, base, `{"cmd":["sh","-c","id -u; echo $HOME"],"user":"root"}`)
	if string(res.stdout) != "0\n/root\n" {
		t.Errorf("as root: %q", res.stdout)
	}
	res = runCmd(t, base, `{"cmd":["cat","/etc/shadow"]}`)
	if res.end.ExitCode == 0 {
		t.Errorf("the user read /etc/shadow: %q", res.stdout)
	}

	// Files the user writes are the user's, parents included.
	file := u.Home + "/new/dir/f.txt"
	if status, raw := do(t, "PUT", fileURL(base, "/v1/files", "~/new/dir/f.txt"), strings.NewReader("x")); status != 200 || !strings.Contains(string(raw), file) {
		t.Fatalf("PUT ~/new/dir/f.txt = %d %s", status, raw)
	}
	for _, p := range []string{file, u.Home + "/new/dir", u.Home + "/new"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 65534 || s.Gid != 65534 {
			t.Errorf("%s is owned by %d:%d, want 65534:65534", p, s.Uid, s.Gid)
		}
	}
	if status, _ := do(t, "POST", fileURL(base, "/v1/files/mkdir", "~/made"), nil); status != 201 {
		t.Errorf("mkdir ~/made = %d", status)
	}
	if st, err := os.Stat(u.Home + "/made"); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("~/made: %v", err)
	}

	// Root's files stay out of reach; root may read them when asked.
	rootDir := t.TempDir() // 0700, root's
	os.WriteFile(rootDir+"/secret", []byte("s"), 0o600)
	denied := []struct{ method, u string }{
		{"GET", fileURL(base, "/v1/files", "/etc/shadow")},
		{"GET", fileURL(base, "/v1/files", rootDir+"/secret")},
		{"PUT", fileURL(base, "/v1/files", rootDir+"/planted")},
		{"PUT", fileURL(base, "/v1/files", "/etc/cubicle-planted")},
		{"DELETE", fileURL(base, "/v1/files", rootDir+"/secret")},
		{"GET", fileURL(base, "/v1/files/list", rootDir)},
		{"POST", fileURL(base, "/v1/files/mkdir", "/etc/cubicle-dir")},
	}
	for _, d := range denied {
		status, e, _ := call(t, d.method, d.u, "", "")
		if status != 400 || !strings.Contains(e.Error.Message, "permission denied") {
			t.Errorf("%s %s as the user = %d %+v, want 400 permission denied", d.method, d.u, status, e.Error)
		}
	}
	for _, p := range []string{rootDir + "/planted", "/etc/cubicle-planted", "/etc/cubicle-dir"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			os.Remove(p)
			t.Errorf("the user created %s", p)
		}
	}
	if status, raw := do(t, "GET", fileURL(base, "/v1/files", rootDir+"/secret", "user", "root"), nil); status != 200 || string(raw) != "s" {
		t.Errorf("GET as root = %d %q", status, raw)
	}

	// Many operations at once, as either account: no thread keeps the
	// wrong identity.
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			asRoot := i%2 == 0
			u := fileURL(base, "/v1/files", rootDir+"/secret")
			if asRoot {
				u += "&user=root"
			}
			req, _ := http.NewRequest("GET", u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if (resp.StatusCode == 200) != asRoot {
				errs <- fmt.Sprintf("request %d (root %t) = %s", i, asRoot, resp.Status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if st, err := os.Stat(filepath.Join(rootDir, "secret")); err != nil || st.Size() != 1 {
		t.Errorf("root's file changed: %v", err)
	}
}
