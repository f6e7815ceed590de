package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
)

// startBare runs an agent attached to a display nobody serves: the
// command and file API need no X server. user is the desktop user (nil:
// the agent's own).
func startBare(t testing.TB, user *display.User) string {
	t.Helper()
	a, err := New(Config{Display: display.Config{Display: 4987, User: user}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// cmdResult is a command's stream, decoded.
type cmdResult struct {
	pid            int
	stdout, stderr []byte
	dropped        int64
	end            *apitype.CommandEnd
	types          []string // event types in order, repeats folded
}

// readEvents decodes an NDJSON command stream.
func readEvents(t *testing.T, r io.Reader) cmdResult {
	t.Helper()
	var res cmdResult
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	for {
		var ev apitype.CommandEvent
		if err := dec.Decode(&ev); err == io.EOF {
			return res
		} else if err != nil {
			t.Fatalf("bad event stream after %v: %v", res.types, err)
		}
		if n := len(res.types); n == 0 || res.types[n-1] != ev.Type {
			res.types = append(res.types, ev.Type)
		}
		switch ev.Type {
		case "start":
			res.pid = ev.PID
		case "stdout":
			res.stdout = append(res.stdout, ev.Data...)
		case "stderr":
			res.stderr = append(res.stderr, ev.Data...)
		case "dropped":
			res.dropped += ev.Bytes
		case "end":
			if ev.CommandEnd == nil {
				t.Fatalf("end event without exit_code after %v", res.types)
			}
			res.end = ev.CommandEnd
		default:
			t.Errorf("unknown event type %q", ev.Type)
		}
	}
}

// post sends a JSON body and returns the response; the caller closes it.
func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// runCmd runs a foreground command and returns its stream.
func runCmd(t *testing.T, url, body string) cmdResult {
	t.Helper()
	resp := post(t, t.Context(), url+"/v1/commands", body)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /v1/commands %s = %s %s", body, resp.Status, b)
	}
	res := readEvents(t, resp.Body)
	if res.end == nil || res.pid == 0 || res.types[0] != "start" || res.types[len(res.types)-1] != "end" {
		t.Fatalf("stream of %s = %v, pid %d: want start ... end", body, res.types, res.pid)
	}
	return res
}

// startBg starts a background command and returns its pid.
func startBg(t *testing.T, url, body string) int {
	t.Helper()
	status, e, raw := call(t, "POST", url+"/v1/commands", "", body)
	var out struct{ PID int }
	if err := json.Unmarshal(raw, &out); status != 200 || err != nil || out.PID <= 0 {
		t.Fatalf("background %s = %d %+v %s", body, status, e, raw)
	}
	return out.PID
}

// output fetches a command's output stream.
func output(t *testing.T, url string, pid int, follow bool) cmdResult {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/commands/%d/output?follow=%t", url, pid, follow))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("output of %d = %s %s", pid, resp.Status, b)
	}
	return readEvents(t, resp.Body)
}

func TestCommandsForeground(t *testing.T) {
	url := startBare(t, nil)
	tests := []struct {
		name, body     string
		stdout, stderr string
		code           int
		signal         string
	}{
		{"script", `{"cmd":"echo hi; echo err >&2; exit 3"}`, "hi\n", "err\n", 3, ""},
		{"argv", `{"cmd":["printf","%s|","a b","$(id)"]}`, "a b|$(id)|", "", 0, ""},
		{"script is one argument", `{"cmd":"printf '%s\\n' \"$0\" \"$#\""}`, "bash\n0\n", "", 0, ""},
		{"env", `{"cmd":"echo \"$FOO $DISPLAY\"","env":{"FOO":"bar baz"}}`, "bar baz :4987\n", "", 0, ""},
		{"env overrides", `{"cmd":["sh","-c","echo $DISPLAY"],"env":{"DISPLAY":":9"}}`, ":9\n", "", 0, ""},
		{"cwd", `{"cmd":"pwd","cwd":"/usr/share"}`, "/usr/share\n", "", 0, ""},
		{"default cwd is home", `{"cmd":["sh","-c","[ \"$(pwd)\" = \"$HOME\" ] && echo same"]}`, "same\n", "", 0, ""},
		{"stdin is empty", `{"cmd":"cat; echo eof"}`, "eof\n", "", 0, ""},
		{"signal", `{"cmd":"kill -TERM $$"}`, "", "", -1, "SIGTERM"},
		{"not found in script", `{"cmd":"no-such-program-xyz"}`, "", "", 127, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCmd(t, url, tt.body)
			if string(res.stdout) != tt.stdout || (tt.code != 127 && string(res.stderr) != tt.stderr) {
				t.Errorf("stdout, stderr = %q, %q; want %q, %q", res.stdout, res.stderr, tt.stdout, tt.stderr)
			}
			if res.end.ExitCode != tt.code || res.end.Signal != tt.signal {
				t.Errorf("end = %+v, want exit code %d, signal %q", res.end, tt.code, tt.signal)
			}
		})
	}
}

func TestCommandsBigOutput(t *testing.T) {
	url := startBare(t, nil)
	// 10 MB on stdout and 1 MB on stderr, far over what a command keeps:
	// an attached client holds the command back instead of losing output.
	const n = 10_000_000
	file := t.TempDir() + "/big"
	want := make([]byte, n)
	rand.Read(want)
	if err := os.WriteFile(file, want, 0o644); err != nil {
		t.Fatal(err)
	}
	res := runCmd(t, url, fmt.Sprintf(`{"cmd":["sh","-c","cat %s; head -c 1000000 /dev/zero >&2"]}`, file))
	if len(res.stdout) != n || sha256.Sum256(res.stdout) != sha256.Sum256(want) {
		t.Errorf("stdout has %d bytes, want the %d bytes written", len(res.stdout), n)
	}
	if len(res.stderr) != 1_000_000 || res.dropped != 0 || res.end.ExitCode != 0 {
		t.Errorf("stderr %d bytes, dropped %d, end %+v; want 1000000, 0, exit 0", len(res.stderr), res.dropped, res.end)
	}
}

func TestCommandsTimeout(t *testing.T) {
	url := startBare(t, nil)
	// The timeout kills the whole process group: the background sleep too.
	res := runCmd(t, url, `{"cmd":["sh","-c","sleep 300 & echo $!; wait"],"timeout_ms":1000}`)
	if !res.end.TimedOut || res.end.Signal != "SIGKILL" || res.end.ExitCode != -1 || !strings.Contains(res.end.Error, "timeout") {
		t.Errorf("end = %+v, want timed out and killed", res.end)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(res.stdout)))
	if err != nil {
		t.Fatalf("stdout %q is not a pid", res.stdout)
	}
	waitFor(t, "the child to die", func() bool { return !alive(child) })

	// timeout_ms 0 is no limit.
	res = runCmd(t, url, `{"cmd":"sleep 0.2; echo ok","timeout_ms":0}`)
	if string(res.stdout) != "ok\n" || res.end.TimedOut {
		t.Errorf("without a timeout: %q %+v", res.stdout, res.end)
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// waitFor polls cond with a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCommandsBackground(t *testing.T) {
	url := startBare(t, nil)
	pid := startBg(t, url, `{"cmd":"for i in 1 2 3; do echo $i; sleep 0.05; done; echo e >&2; exit 4","background":true}`)
	res := output(t, url, pid, true)
	if string(res.stdout) != "1\n2\n3\n" || string(res.stderr) != "e\n" || res.end == nil || res.end.ExitCode != 4 || res.pid != pid {
		t.Errorf("followed output = %q %q %+v pid %d", res.stdout, res.stderr, res.end, res.pid)
	}
	// A late reader gets the same, end included.
	late := output(t, url, pid, false)
	if string(late.stdout) != "1\n2\n3\n" || late.end == nil || late.end.ExitCode != 4 {
		t.Errorf("late output = %q %+v", late.stdout, late.end)
	}

	// Without follow, a running command gives what it wrote so far and no end.
	pid = startBg(t, url, `{"cmd":"echo first; exec sleep 30","background":true}`)
	waitFor(t, "the first line", func() bool { return string(output(t, url, pid, false).stdout) == "first\n" })
	if res := output(t, url, pid, false); res.end != nil {
		t.Errorf("a running command has an end: %+v", res.end)
	}
	listed := listCommands(t, url)
	if c, ok := listed[pid]; !ok || !c.Background || c.Cmd[0] != "bash" {
		t.Errorf("list = %+v, want background pid %d", listed, pid)
	}
	if status, e, _ := call(t, "POST", fmt.Sprintf("%s/v1/commands/%d/kill", url, pid), "", `{"signal":"term"}`); status != 204 {
		t.Fatalf("kill = %d %+v", status, e)
	}
	res = output(t, url, pid, true)
	if res.end == nil || res.end.Signal != "SIGTERM" {
		t.Errorf("end after SIGTERM = %+v", res.end)
	}
	if _, ok := listCommands(t, url)[pid]; ok {
		t.Errorf("ended command %d still listed", pid)
	}
	if status, e, _ := call(t, "POST", fmt.Sprintf("%s/v1/commands/%d/kill", url, pid), "", ``); status != 404 || e.Error.Code != desktop.CodeNotFound {
		t.Errorf("kill of an ended command = %d %+v, want 404", status, e)
	}
}

func listCommands(t *testing.T, url string) map[int]apitype.CommandInfo {
	t.Helper()
	status, _, raw := call(t, "GET", url+"/v1/commands", "", "")
	var list []apitype.CommandInfo
	if err := json.Unmarshal(raw, &list); status != 200 || err != nil {
		t.Fatalf("list = %d %s", status, raw)
	}
	m := map[int]apitype.CommandInfo{}
	for _, c := range list {
		m[c.PID] = c
	}
	return m
}

func TestCommandsStdin(t *testing.T) {
	url := startBare(t, nil)
	pid := startBg(t, url, `{"cmd":["cat"],"background":true,"stdin":true}`)
	stdin := fmt.Sprintf("%s/v1/commands/%d/stdin", url, pid)
	for _, body := range []string{`{"data":"aGVsbG8g"}`, `{"data":"d29ybGQ=","close":true}`} {
		if status, e, _ := call(t, "POST", stdin, "", body); status != 204 {
			t.Fatalf("stdin %s = %d %+v", body, status, e)
		}
	}
	res := output(t, url, pid, true)
	if string(res.stdout) != "hello world" || res.end == nil || res.end.ExitCode != 0 {
		t.Errorf("cat gave %q %+v", res.stdout, res.end)
	}

	pid = startBg(t, url, `{"cmd":"sleep 30","background":true}`)
	defer call(t, "POST", fmt.Sprintf("%s/v1/commands/%d/kill", url, pid), "", "")
	status, e, _ := call(t, "POST", fmt.Sprintf("%s/v1/commands/%d/stdin", url, pid), "", `{"data":"eA=="}`)
	if status != 409 || !strings.Contains(e.Error.Message, "without stdin") {
		t.Errorf("stdin to a command without = %d %+v, want 409", status, e)
	}
}

// TestCommandsSurviveDisconnect: a client that goes away stops streaming,
// not the command; its output and end can be fetched later.
func TestCommandsSurviveDisconnect(t *testing.T) {
	url := startBare(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	resp := post(t, ctx, url+"/v1/commands", `{"cmd":"echo started; sleep 0.5; echo finished"}`)
	dec := json.NewDecoder(resp.Body)
	var start struct {
		Type string
		PID  int
	}
	if err := dec.Decode(&start); err != nil || start.Type != "start" {
		t.Fatalf("first event = %+v, %v", start, err)
	}
	cancel()
	resp.Body.Close()
	res := output(t, url, start.PID, true)
	if string(res.stdout) != "started\nfinished\n" || res.end == nil || res.end.ExitCode != 0 {
		t.Errorf("after the disconnect: %q %+v", res.stdout, res.end)
	}
}

func TestCommandsRejectBadInput(t *testing.T) {
	url := startBare(t, nil)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"no cmd", "POST", "/v1/commands", `{}`, 400, desktop.CodeInvalid, `"cmd"`},
		{"empty script", "POST", "/v1/commands", `{"cmd":""}`, 400, desktop.CodeBadRequest, "empty"},
		{"empty argv", "POST", "/v1/commands", `{"cmd":[]}`, 400, desktop.CodeInvalid, "empty"},
		{"cmd of numbers", "POST", "/v1/commands", `{"cmd":5}`, 400, desktop.CodeBadRequest, "array of strings"},
		{"NUL", "POST", "/v1/commands", `{"cmd":["echo","a\u0000b"]}`, 400, desktop.CodeInvalid, "NUL"},
		{"bad env name", "POST", "/v1/commands", `{"cmd":"true","env":{"A-B":"1"}}`, 400, desktop.CodeInvalid, "A-B"},
		{"negative timeout", "POST", "/v1/commands", `{"cmd":"true","timeout_ms":-1}`, 400, desktop.CodeInvalid, "timeout_ms"},
		{"unknown field", "POST", "/v1/commands", `{"cmd":"true","shell":"zsh"}`, 400, desktop.CodeBadRequest, "shell"},
		{"unknown user", "POST", "/v1/commands", `{"cmd":"true","user":"mallory"}`, 400, desktop.CodeInvalid, "mallory"},
		{"missing program", "POST", "/v1/commands", `{"cmd":["no-such-program-xyz"]}`, 404, desktop.CodeNotFound, "PATH"},
		{"missing cwd", "POST", "/v1/commands", `{"cmd":"true","cwd":"/no/such/dir"}`, 400, desktop.CodeInvalid, "/no/such/dir"},
		{"body too large", "POST", "/v1/commands", `{"cmd":"` + strings.Repeat("a", 9<<20) + `"}`, 413, desktop.CodeTooLarge, "bytes"},
		{"unknown pid", "GET", "/v1/commands/999999999/output", ``, 404, desktop.CodeNotFound, "999999999"},
		{"bad pid", "POST", "/v1/commands/abc/kill", ``, 400, desktop.CodeInvalid, "abc"},
		{"output of an unknown pid", "GET", "/v1/commands/1/output?follow=maybe", ``, 404, desktop.CodeNotFound, ""},
		{"stdin to unknown", "POST", "/v1/commands/999999999/stdin", `{"data":""}`, 404, desktop.CodeNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e, raw := call(t, tt.method, url+tt.path, "", tt.body)
			if status != tt.status || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.msg) {
				t.Errorf("%s %s = %d %s, want %d %s containing %q", tt.method, tt.path, status, truncate(raw), tt.status, tt.code, tt.msg)
			}
		})
	}
	t.Run("bad signal", func(t *testing.T) {
		pid := startBg(t, url, `{"cmd":"sleep 30","background":true}`)
		kill := fmt.Sprintf("%s/v1/commands/%d/kill", url, pid)
		status, e, _ := call(t, "POST", kill, "", `{"signal":"SIGFOO"}`)
		if status != 400 || e.Error.Field != "signal" || !strings.Contains(e.Error.Message, "SIGFOO") {
			t.Errorf("kill with SIGFOO = %d %+v", status, e)
		}
		if status, e, _ := call(t, "POST", kill, "", ``); status != 204 {
			t.Errorf("kill = %d %+v", status, e)
		}
	})
}

// TestCommandsOnRealDisplay runs what E2B's desktop SDK runs, against a
// real X server: the command gets the desktop's DISPLAY.
func TestCommandsOnRealDisplay(t *testing.T) {
	url := startAttached(t, "tok")
	req, _ := http.NewRequest("POST", url+"/v1/commands", strings.NewReader(`{"cmd":"xdpyinfo | grep dimensions"}`))
	req.Header.Set("X-Access-Token", "tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	res := readEvents(t, resp.Body)
	if res.end == nil || res.end.ExitCode != 0 || !strings.Contains(string(res.stdout), "800x600 pixels") {
		t.Errorf("xdpyinfo: %q %q %+v", res.stdout, res.stderr, res.end)
	}
	if status, _, _ := call(t, "GET", url+"/v1/commands", "", ""); status != 401 {
		t.Errorf("commands without the token = %d, want 401", status)
	}
}

// TestCommandsKeepTail: with nobody attached, a command keeps the last
// outputCap bytes of its output and says how much it dropped.
func TestCommandsKeepTail(t *testing.T) {
	url := startBare(t, nil)
	const n = 3 << 20
	pid := startBg(t, url, fmt.Sprintf(`{"cmd":["sh","-c","head -c %d /dev/zero | tr '\\0' x; echo END"],"background":true}`, n))
	waitFor(t, "the command to end", func() bool {
		_, running := listCommands(t, url)[pid]
		return !running
	})
	res := output(t, url, pid, false)
	got := int64(len(res.stdout))
	if got > outputCap || got < outputCap-readChunk || res.dropped+got != n+4 || !strings.HasSuffix(string(res.stdout), "xxEND\n") {
		t.Errorf("kept %d bytes and dropped %d of %d (ends %q); want the last %d or so", got, res.dropped, n+4, res.stdout[max(0, got-6):], outputCap)
	}
	if res.types[1] != "dropped" {
		t.Errorf("events %v: want dropped before the output", res.types)
	}
}
