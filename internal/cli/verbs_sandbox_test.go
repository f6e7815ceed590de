package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

// sandboxPlay plays the commands of the sandbox tests.
func sandboxPlay(c clienttest.Command) clienttest.CommandOutput {
	switch c.Argv[0] {
	case "false":
		return clienttest.CommandOutput{Stderr: "it failed\n", ExitCode: 3, Error: "exit status 3"}
	case "sleep":
		return clienttest.CommandOutput{ExitCode: -1, Signal: "SIGKILL", TimedOut: true, Error: "the command ran past its timeout of 1s and was killed"}
	case "crash":
		return clienttest.CommandOutput{ExitCode: -1, Signal: "SIGSEGV", Error: "signal: segmentation fault"}
	case "cat":
		return clienttest.CommandOutput{Stdout: c.Stdin}
	}
	return clienttest.CommandOutput{Stdout: strings.Join(c.Argv, " ") + "\n", Stderr: "cwd=" + c.Cwd + " user=" + c.User + "\n"}
}

// startServer runs a fake server with small screens and scripted commands.
func startServer(t *testing.T) *clienttest.Server {
	t.Helper()
	return clienttest.StartServer(t, clienttest.ServerOptions{Agent: clienttest.Options{
		Screen: desktop.Size{Width: 320, Height: 240}, Windows: testWindows(), RunCommand: sandboxPlay,
		Files: map[string][]byte{"/home/user/notes.txt": []byte("remote notes\n")},
	}})
}

// runServer runs the command against the fake server.
func runServer(t *testing.T, s *clienttest.Server, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, map[string]string{envServerURL: s.URL, envAPIKey: clienttest.TestAPIKey}, stdin, args...)
}

func TestSandboxVerbs(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	local := filepath.Join(dir, "up.txt")
	if err := os.WriteFile(local, []byte("local bytes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const id1, id2, id3 = "sbx00000000000000001", "sbx00000000000000002", "sbx00000000000000003"
	var all strings.Builder
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"create"}},
		{"", []string{"create", "--resolution", "640x480", "--timeout", "30m", "--metadata", "owner=ci", "--metadata", "run=7",
			"--env", "LANG=C.UTF-8", "--no-internet", "--json"}},
		{"", []string{"create", "--metadata", "owner=me"}},
		{"", []string{"ls"}},
		{"", []string{"ls", "--metadata", "owner=ci", "--json"}},
		{"", []string{"ls", "--state", "paused"}},
		{"", []string{"inspect", id1}},
		{"", []string{"exec", id1, "--cwd", "/tmp", "--user", "root", "--", "echo", "a b", "$(id)"}},
		{"", []string{"exec", id1, "--", "false"}},
		{"", []string{"exec", id1, "--timeout", "1s", "--", "sleep", "100"}},
		{"", []string{"exec", id1, "--", "crash"}},
		{"piped input\n", []string{"exec", id1, "-i", "--", "cat"}},
		{"", []string{"exec", id1, "--json", "--", "true"}},
		{"", []string{"cp", local, id1 + ":/tmp/"}},
		{"", []string{"cp", local, id1 + ":/home/user/copy.txt", "--json"}},
		{"from stdin", []string{"cp", "-", id1 + ":/tmp/stdin.txt"}},
		{"", []string{"cp", id1 + ":/home/user/notes.txt", dir}},
		{"", []string{"cp", id1 + ":/tmp/stdin.txt", "-"}},
		{"", []string{"cursor", "--sandbox", id2}},
		{"", []string{"click", "10", "20", "--sandbox", id2, "--json"}},
		{"", []string{"kill", id2, id3}},
		{"", []string{"ls", "--json"}},
	} {
		all.WriteString(runServer(t, s, c.stdin, c.args...).transcript())
	}
	golden(t, "sandbox", all.String(), s.URL, "$SERVER", dir, "$TMP")

	agent := s.Agent(id1)
	for p, want := range map[string]string{"/tmp/up.txt": "local bytes\n", "/home/user/copy.txt": "local bytes\n", "/tmp/stdin.txt": "from stdin"} {
		if got, ok := agent.File(p); !ok || string(got) != want {
			t.Errorf("%s holds %q, want %q", p, got, want)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dir, "notes.txt")); err != nil || string(got) != "remote notes\n" {
		t.Errorf("downloaded notes.txt: %q, %v", got, err)
	}
	var execs []string
	for _, r := range agent.Requests() {
		if r.Path == "/v1/commands" {
			execs = append(execs, canonJSON(t, r.Body))
		}
	}
	want := []string{
		`{"cmd":["echo","a b","$(id)"],"cwd":"/tmp","timeout_ms":0,"user":"root"}`,
		`{"cmd":["false"],"timeout_ms":0}`,
		`{"cmd":["sleep","100"],"timeout_ms":1000}`,
		`{"cmd":["crash"],"timeout_ms":0}`,
		`{"background":true,"cmd":["cat"],"stdin":true,"timeout_ms":0}`,
		`{"cmd":["true"],"timeout_ms":0}`,
	}
	if d := cmp.Diff(want, execs); d != "" {
		t.Errorf("exec requests (-want +got):\n%s", d)
	}
	creates := s.Requests()[1]
	if got := canonJSON(t, creates.Body); got != `{"env":{"LANG":"C.UTF-8"},"metadata":{"owner":"ci","run":"7"},"network":{"internet":false},"resolution":{"height":480,"width":640},"timeout_s":1800}` {
		t.Errorf("create request = %s", got)
	}
}

func TestSandboxVerbErrors(t *testing.T) {
	s := startServer(t)
	var all strings.Builder
	for _, args := range [][]string{
		{"create", "extra"},
		{"create", "--resolution", "big"},
		{"create", "--metadata", "novalue"},
		{"create", "--timeout", "-5s"},
		{"ls", "--state", "gone"},
		{"inspect"},
		{"kill"},
		{"exec", "sbx1"},
		{"exec", "sbx1", "--", ""},
		{"cp", "a", "b"},
		{"cp", "sbx1:/a", "sbx2:/b"},
		{"cp", "onlyone"},
		{"cp", ".", "sbx00000000000000001:/tmp/"},
	} {
		r := runServer(t, s, "", args...)
		if r.code != exitUsage {
			t.Errorf("cubicle %q: exit %d, want 2", args, r.code)
		}
		all.WriteString(r.transcript())
	}
	if reqs := s.Requests(); len(reqs) != 0 {
		t.Errorf("usage errors sent %d requests: %v", len(reqs), reqs)
	}
	for _, args := range [][]string{
		{"inspect", "nosuchsandbox"},
		{"kill", "nosuchsandbox"},
		{"exec", "nosuchsandbox", "--", "true"},
		{"cursor", "--sandbox", "nosuchsandbox"},
		{"create", "--resolution", "10x10"},
		{"create"},
		{"cp", "sbx00000000000000001:/nope", "-"},
		{"cp", "sbx00000000000000001:/home/user/notes.txt", "/no/such/dir/x"},
	} {
		all.WriteString(runServer(t, s, "", args...).transcript())
	}
	all.WriteString(runEnv(t, map[string]string{envServerURL: s.URL}, "", "ls").transcript())
	all.WriteString(runEnv(t, map[string]string{envServerURL: s.URL, envAPIKey: "cbk_wrong"}, "", "ls").transcript())
	down := freeURL(t)
	r := runEnv(t, map[string]string{envServerURL: down, envAPIKey: "k"}, "", "ls")
	all.WriteString(strings.NewReplacer(down, "$DOWN", strings.TrimPrefix(down, "http://"), "$DOWN_ADDR").Replace(r.transcript()))
	golden(t, "sandbox_errors", all.String(), s.URL, "$SERVER")
}
