package envd_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/cubicle-dev/cubicle/internal/envd"
	fspb "github.com/cubicle-dev/cubicle/internal/envd/spec/filesystem"
	pb "github.com/cubicle-dev/cubicle/internal/envd/spec/process"
)

// call sends a request with the given token ("" for none).
func call(t *testing.T, method, u, token string, hdr http.Header, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func filesURL(base string, q url.Values) string { return base + "/files?" + q.Encode() }

type uploadedFile struct {
	Path     string            `json:"path"`
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Metadata map[string]string `json:"metadata"`
}

func TestFilesUploadDownload(t *testing.T) {
	sb := startAgent(t)
	home := sb.home(t)

	// Multipart, as the SDK's files.write sends it: the part's filename is
	// the target path.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, content := range map[string]string{"up/one.txt": "first", home + "/up/two.txt": "second"} {
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write([]byte(content))
	}
	mw.Close()
	status, _, raw := call(t, "POST", sb.base+"/files", testToken, http.Header{"Content-Type": {mw.FormDataContentType()}}, &body)
	var got []uploadedFile
	if status != 200 || json.Unmarshal(raw, &got) != nil || len(got) != 2 {
		t.Fatalf("multipart upload: %d %s", status, raw)
	}
	for _, f := range got {
		if f.Type != "file" || filepath.Dir(f.Path) != home+"/up" || f.Name != filepath.Base(f.Path) {
			t.Errorf("uploaded entry %+v", f)
		}
	}
	sb.ownedBy(t, home+"/up")
	sb.ownedBy(t, home+"/up/one.txt")

	// Octet-stream with gzip, the path in the query, metadata in headers.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("compressed content"))
	zw.Close()
	hdr := http.Header{"Content-Type": {"application/octet-stream"}, "Content-Encoding": {"gzip"}, "X-Metadata-Owner-Team": {"qa"}}
	status, _, raw = call(t, "POST", filesURL(sb.base, url.Values{"path": {"~/up/z.txt"}}), testToken, hdr, &gz)
	xattrs := true
	if status == 400 && strings.Contains(string(raw), "does not keep metadata") {
		xattrs = false // the test's filesystem has no user xattrs
		hdr.Del("X-Metadata-Owner-Team")
		gz.Reset()
		zw = gzip.NewWriter(&gz)
		zw.Write([]byte("compressed content"))
		zw.Close()
		status, _, raw = call(t, "POST", filesURL(sb.base, url.Values{"path": {"~/up/z.txt"}}), testToken, hdr, &gz)
	}
	if status != 200 || !strings.Contains(string(raw), `"path":"`+home+`/up/z.txt"`) {
		t.Fatalf("octet-stream upload: %d %s", status, raw)
	}
	if b, _ := os.ReadFile(home + "/up/z.txt"); string(b) != "compressed content" {
		t.Errorf("the gzip upload wrote %q", b)
	}
	if xattrs {
		st, err := sb.fs().Stat(context.Background(), connect.NewRequest(&fspb.StatRequest{Path: "up/z.txt"}))
		if err != nil || st.Msg.GetEntry().GetMetadata()["owner-team"] != "qa" {
			t.Errorf("metadata of the upload: %v %v", st.Msg.GetEntry().GetMetadata(), err)
		}
	}

	// Download, whole and a range.
	status, h, raw := call(t, "GET", filesURL(sb.base, url.Values{"path": {"up/one.txt"}}), testToken, nil, nil)
	if status != 200 || string(raw) != "first" || !strings.Contains(h.Get("Content-Disposition"), `filename=one.txt`) {
		t.Errorf("download: %d %q %v", status, raw, h)
	}
	status, _, raw = call(t, "GET", filesURL(sb.base, url.Values{"path": {home + "/up/two.txt"}}), testToken, http.Header{"Range": {"bytes=1-3"}}, nil)
	if status != 206 || string(raw) != "eco" {
		t.Errorf("range download: %d %q", status, raw)
	}

	errTests := []struct {
		name   string
		method string
		q      url.Values
		status int
		msg    string
	}{
		{"missing file", "GET", url.Values{"path": {"/no/such/file"}}, 404, "path '/no/such/file' does not exist"},
		{"directory", "GET", url.Values{"path": {"up"}}, 400, ""},
		{"no path", "GET", url.Values{}, 400, ""},
		{"unknown user", "GET", url.Values{"path": {"up/one.txt"}, "username": {"no-such-user"}}, 401, ""},
		{"octet-stream without path", "POST", url.Values{}, 400, ""},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := call(t, tt.method, filesURL(sb.base, tt.q), testToken, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("x"))
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(raw, &e); err != nil || status != tt.status || e.Code != tt.status || (tt.msg != "" && e.Message != tt.msg) {
				t.Errorf("%s: %d %s, want %d with code %d %q", tt.name, status, raw, tt.status, tt.status, tt.msg)
			}
		})
	}
}

func TestFilesAuth(t *testing.T) {
	sb := startAgent(t)
	os.WriteFile(filepath.Join(sb.home(t), "signed.txt"), []byte("secret"), 0o644)
	sign := func(p, op, user string, exp time.Time) url.Values {
		q := url.Values{"path": {p}, "signature": {envd.Sign(p, op, user, testToken, exp)}}
		if user != "" {
			q.Set("username", user)
		}
		if !exp.IsZero() {
			q.Set("signature_expiration", strconv.FormatInt(exp.Unix(), 10))
		}
		return q
	}
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Minute)
	tampered := sign("signed.txt", "read", "", future)
	tampered.Set("path", "other.txt")
	tests := []struct {
		name   string
		method string
		q      url.Values
		token  string
		status int
	}{
		{"no token", "GET", url.Values{"path": {"signed.txt"}}, "", 401},
		{"wrong token", "GET", url.Values{"path": {"signed.txt"}}, "nope", 401},
		{"token", "GET", url.Values{"path": {"signed.txt"}}, testToken, 200},
		{"signed", "GET", sign("signed.txt", "read", "", time.Time{}), "", 200},
		{"signed with user and expiry", "GET", sign("signed.txt", "read", "user", future), "", 200},
		{"expired", "GET", sign("signed.txt", "read", "", past), "", 401},
		{"tampered path", "GET", tampered, "", 401},
		{"signed for write, used to read", "GET", sign("signed.txt", "write", "", future), "", 401},
		{"signed write", "POST", sign("signed-up.txt", "write", "", future), "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, raw := call(t, tt.method, filesURL(sb.base, tt.q), tt.token, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("up"))
			if status != tt.status {
				t.Errorf("%d %s, want %d", status, raw, tt.status)
			}
			if status == 401 && !strings.Contains(string(raw), `"code":401`) {
				t.Errorf("401 body %s, want JSON with code 401", raw)
			}
		})
	}
}

func TestPlainRoutes(t *testing.T) {
	sb := startAgent(t)
	if status, _, raw := call(t, "GET", sb.base+"/health", "", nil, nil); status != 204 || len(raw) != 0 {
		t.Errorf("GET /health without a token: %d %q, want 204 and no body", status, raw)
	}
	for _, p := range []string{"/envs", "/metrics"} {
		if status, _, _ := call(t, "GET", sb.base+p, "", nil, nil); status != 401 {
			t.Errorf("GET %s without a token: %d, want 401", p, status)
		}
	}
	status, _, raw := call(t, "GET", sb.base+"/metrics", testToken, nil, nil)
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); status != 200 || err != nil {
		t.Fatalf("GET /metrics: %d %s", status, raw)
	}
	for _, k := range []string{"ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "mem_cache", "mem_total_mib", "mem_used_mib", "disk_used", "disk_total"} {
		if _, ok := m[k]; !ok {
			t.Errorf("metrics lack %q: %s", k, raw)
		}
	}
	if m["mem_total"] <= 0 || m["cpu_count"] <= 0 || m["disk_total"] <= 0 {
		t.Errorf("metrics %s", raw)
	}

	// /init adds sandbox variables that every later process gets.
	body := `{"envVars":{"FROM_INIT":"yes"},"defaultWorkdir":"/tmp"}`
	if status, _, raw := call(t, "POST", sb.base+"/init", testToken, http.Header{"Content-Type": {"application/json"}}, strings.NewReader(body)); status != 204 {
		t.Fatalf("POST /init: %d %s", status, raw)
	}
	status, _, raw = call(t, "GET", sb.base+"/envs", testToken, nil, nil)
	var envs map[string]string
	if json.Unmarshal(raw, &envs); status != 200 || envs["FROM_INIT"] != "yes" {
		t.Errorf("GET /envs: %d %s", status, raw)
	}
	res := run(t, sb.process(), connect.NewRequest(bash(`echo $FROM_INIT; pwd`)))
	if string(res.stdout) != "yes\n/tmp\n" {
		t.Errorf("after /init: stdout %q", res.stdout)
	}
	if status, _, _ := call(t, "POST", sb.base+"/init", testToken, nil, strings.NewReader(`{"accessToken":"another"}`)); status != 409 {
		t.Errorf("POST /init changing the token: %d, want 409", status)
	}
}

// TestCloseKillsProcesses checks that shutting the agent down leaves no
// process of envd behind, daemons that left their process group included.
func TestCloseKillsProcesses(t *testing.T) {
	var pids []int
	t.Run("run", func(t *testing.T) {
		sb := startAgent(t)
		c := sb.process()
		pids = append(pids, int(startDetached(t, c, &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "sleep", Args: []string{"300"}}})))
		res := run(t, c, connect.NewRequest(bash("setsid sleep 301 >/dev/null 2>&1 & echo $!")))
		daemon, err := strconv.Atoi(strings.TrimSpace(string(res.stdout)))
		if err != nil {
			t.Fatalf("daemon pid %q: %v", res.stdout, err)
		}
		pids = append(pids, daemon)
	})
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("process %d to end with the agent", pid), func() bool { return !alive(pid) })
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
