package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const testToken = "tok-123"

func testWindows() []desktop.Window {
	return []desktop.Window{
		{ID: 12582919, Title: "Terminal - user@box: ~", Class: "Xfce4-terminal", Instance: "xfce4-terminal", PID: 321,
			Rect: desktop.Rect{X: 40, Y: 60, Width: 800, Height: 500}, Focused: true},
		{ID: 20971527, Title: "Mozilla Firefox", Class: "firefox-esr", Instance: "Navigator", PID: 654,
			Rect: desktop.Rect{X: 0, Y: 0, Width: 1024, Height: 740}},
		{ID: 23068673, Title: "A very long page title that goes on and on\tand has a tab in it too", Class: "firefox-esr",
			Instance: "Navigator", Rect: desktop.Rect{X: 10, Y: 20, Width: 300, Height: 200}},
	}
}

// startAgent runs a fake agent that wants testToken.
func startAgent(t *testing.T, o clienttest.Options) *clienttest.Agent {
	t.Helper()
	o.Token = testToken
	if o.Windows == nil {
		o.Windows = testWindows()
	}
	if o.Screen == (desktop.Size{}) {
		o.Screen = desktop.Size{Width: 320, Height: 240} // small: quick to encode
	}
	return clienttest.Start(t, o)
}

// result is what one run of the command gave.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

// runCLI runs the command with the agent's URL and token in the
// environment.
func runCLI(t *testing.T, a *clienttest.Agent, stdin string, args ...string) result {
	t.Helper()
	env := map[string]string{}
	if a != nil {
		env[envAgentURL] = a.URL
		env[envToken] = testToken
	}
	return runEnv(t, env, stdin, args...)
}

func runEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return env[k] })
	return result{args: args, code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// transcript shows a run as the golden files hold it.
func (r result) transcript() string {
	var b strings.Builder
	b.WriteString("$ cubicle")
	for _, a := range r.args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'$*?") {
			a = "'" + a + "'"
		}
		b.WriteString(" " + a)
	}
	fmt.Fprintf(&b, "\nexit %d\n", r.code)
	if r.stdout != "" {
		b.WriteString("--- stdout\n" + r.stdout)
		if !strings.HasSuffix(r.stdout, "\n") {
			b.WriteString("\n(no newline at the end)\n")
		}
	}
	if r.stderr != "" {
		b.WriteString("--- stderr\n" + r.stderr)
	}
	return b.String() + "\n"
}

// golden compares got with testdata/name.golden, or rewrites it under
// -update. Each replacer pair turns a run-specific string into a stable one.
func golden(t *testing.T, name, got string, replace ...string) {
	t.Helper()
	got = strings.NewReplacer(replace...).Replace(got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

// agentReplacer turns the agent's address into stable words.
func agentReplacer(url string) []string {
	return []string{url, "$AGENT", strings.TrimPrefix(url, "http://"), "$AGENT_ADDR"}
}

// sent is a request as the tests compare it: the body as canonical JSON.
type sent struct {
	Method, Path, Query, Body string
}

func canonJSON(t *testing.T, b []byte) string {
	t.Helper()
	if len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", b, err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func sentBy(t *testing.T, a *clienttest.Agent) []sent {
	t.Helper()
	var out []sent
	for _, r := range a.Requests() {
		out = append(out, sent{Method: r.Method, Path: r.Path, Query: r.Query.Encode(), Body: canonJSON(t, r.Body)})
	}
	return out
}

// freeURL returns the URL of a loopback port where nothing listens.
func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

func TestHelp(t *testing.T) {
	var all strings.Builder
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, nil, "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("cubicle %s: exit %d, stderr %q; want 0 and nothing", args[0], r.code, r.stderr)
		}
		if args[0] == "help" {
			all.WriteString(r.transcript())
		} else if want := runCLI(t, nil, "", "help").stdout; r.stdout != want {
			t.Errorf("cubicle %s prints other text than cubicle help", args[0])
		}
	}
	r := runCLI(t, nil, "")
	if r.code != exitUsage || r.stdout != "" || r.stderr != mainUsage() {
		t.Errorf("cubicle with no verb: exit %d, stdout %q; want 2 and the usage on stderr", r.code, r.stdout)
	}
	for _, v := range verbs() {
		if !strings.Contains(mainUsage(), "\n  "+v.name+" ") {
			t.Errorf("the usage text does not list %s", v.name)
		}
		r := runCLI(t, nil, "", "help", v.name)
		all.WriteString(r.transcript())
		if r.code != 0 {
			t.Errorf("cubicle help %s: exit %d", v.name, r.code)
		}
		if h := runCLI(t, nil, "", v.name, "-h"); h.code != 0 || h.stdout != r.stdout {
			t.Errorf("cubicle %s -h: exit %d and other text than cubicle help %s", v.name, h.code, v.name)
		}
	}
	golden(t, "help", all.String())
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantFlag string
	}{
		{[]string{"10", "20", "--button", "right"}, []string{"10", "20"}, "right"},
		{[]string{"--button=middle", "10", "20"}, []string{"10", "20"}, "middle"},
		{[]string{"-5", "--button", "left", "-7"}, []string{"-5", "-7"}, "left"},
		{[]string{"--", "--button", "x"}, []string{"--button", "x"}, ""},
		{[]string{"a", "--button", "back", "--", "-b", "--c"}, []string{"a", "-b", "--c"}, "back"},
		{[]string{"--button", "--", "b"}, []string{"b"}, "--"},
		{[]string{"-", "x"}, []string{"-", "x"}, ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		b := fs.String("button", "", "")
		fs.Bool("double", false, "")
		pos, err := parseArgs(fs, tt.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.wantPos, pos); diff != "" || *b != tt.wantFlag {
			t.Errorf("parseArgs(%q) = %q, button %q; want %q, %q", tt.args, pos, *b, tt.wantPos, tt.wantFlag)
		}
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	a := startAgent(t, clienttest.Options{})
	other := freeURL(t)
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantCode  int
		wantToken string
	}{
		{"env", map[string]string{envAgentURL: a.URL, envToken: testToken}, []string{"cursor"}, 0, testToken},
		{"flags", map[string]string{envAgentURL: other, envToken: "wrong"},
			[]string{"cursor", "--agent", a.URL, "--token", testToken}, 0, testToken},
		{"no token", map[string]string{envAgentURL: a.URL}, []string{"cursor"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.ClearRequests()
			r := runEnv(t, tt.env, "", tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.wantCode, r.stderr)
			}
			reqs := a.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests reached the agent, want 1", len(reqs))
			}
			if got := reqs[0].Header.Get("X-Access-Token"); got != tt.wantToken {
				t.Errorf("token %q, want %q", got, tt.wantToken)
			}
			if got := reqs[0].Header.Get("User-Agent"); got != "cubicle-cli" {
				t.Errorf("User-Agent %q, want cubicle-cli", got)
			}
		})
	}
}

func TestRunReadsTheEnvironment(t *testing.T) {
	a := startAgent(t, clienttest.Options{})
	t.Setenv(envAgentURL, a.URL)
	t.Setenv(envToken, testToken)
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), []string{"screen"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 || stdout.String() != "320x240\n" {
		t.Errorf("Run(screen) = %d, %q, %q; want 0 and 320x240", code, stdout.String(), stderr.String())
	}
}
