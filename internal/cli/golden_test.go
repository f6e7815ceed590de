package cli

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

func TestWindowsTable(t *testing.T) {
	a := startAgent(t, clienttest.Options{})
	empty := clienttest.Start(t, clienttest.Options{Token: testToken, Windows: []desktop.Window{}})
	var all strings.Builder
	for _, args := range [][]string{
		{"windows"},
		{"windows", "--class", "FIREFOX-ESR"},
		{"windows", "--title", "no such title"},
	} {
		all.WriteString(runCLI(t, a, "", args...).transcript())
	}
	all.WriteString(runCLI(t, empty, "", "windows").transcript())
	golden(t, "windows", all.String())
}

func TestJSONOutputs(t *testing.T) {
	dir := t.TempDir()
	batch := filepath.Join(dir, "batch.json")
	if err := os.WriteFile(batch, []byte(`{
  "actions": [
    {"type": "launch", "app": "xfce4-terminal"},
    {"type": "click", "x": 100, "y": 50},
    {"type": "type", "text": "ls\n"}
  ],
  "settle": {"quiet_ms": 50}
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"cursor", "--json"},
		{"screen", "--json"},
		{"click", "10", "20", "--json"},
		{"drag", "1", "1", "5", "5", "--json"},
		{"key", "--json", "ctrl+l", "Return"},
		{"windows", "--json", "--class", "xfce4-terminal"},
		{"window-title", "12582919", "--json"},
		{"launch", "xfce4-terminal", "--json"},
		{"open", "https://example.com", "--json"},
		{"clipboard", "--json"},
		{"ready", "--json"},
		{"screenshot", "--json", "-o", filepath.Join(dir, "s.jpg"), "--width", "100"},
		{"do", batch, "--json", "--screenshot-out", filepath.Join(dir, "batch.png")},
		{"key", "--json", "ctrl", "nosuchkey"},
		{"window-title", "99", "--json"},
	}
	a := startAgent(t, clienttest.Options{})
	var all strings.Builder
	for _, args := range cases {
		all.WriteString(runCLI(t, a, "", args...).transcript())
	}
	golden(t, "json", all.String(), dir, "$TMP")
}

func TestDoVerb(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := write("ok.json", `[{"type":"move","x":5,"y":5},{"type":"launch","command":["xterm"]},{"type":"wait","duration_ms":1}]`)
	partial := write("partial.json", `{"actions":[{"type":"click","x":1,"y":1},{"type":"focus_window","window":999},{"type":"key","keys":["enter"]}]}`)
	invalid := write("invalid.json", `{"actions":[{"type":"click","x":1,"y":1},{"type":"key","keys":["ctrl+l"]}]}`)
	shot := filepath.Join(dir, "shot.png")

	a := startAgent(t, clienttest.Options{})
	var all strings.Builder
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"do", ok}},
		{"", []string{"do", partial}},
		{"", []string{"do", invalid}},
		{`{"actions":[{"type":"type","text":"hi"}],"screenshot":{"width":64}}`, []string{"do", "-", "--screenshot-out", shot}},
		{`{"actions":[{"type":"type","text":"hi"}],"screenshot":{}}`, []string{"do", "-"}},
	} {
		all.WriteString(runCLI(t, a, c.stdin, c.args...).transcript())
	}
	golden(t, "do", all.String(), dir, "$TMP")
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if f, w, h := decodeImage(t, data); f != "png" || w != 64 || h != 48 {
		t.Errorf("--screenshot-out wrote %s %dx%d, want png 64x48", f, w, h)
	}
}

// TestUsageErrors checks that bad arguments are refused, with exit code 2,
// before anything is sent.
func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{"frobnicate"},
		{"help", "frobnicate"},
		{"help", "click", "move"},
		{"click", "12.5", "3"},
		{"click", "-", "3"},
		{"click", "10"},
		{"click", "-5", "10"},
		{"click", "1", "2", "--double", "--triple"},
		{"click", "1", "2", "--count", "11"},
		{"click", "1", "2", "--count", "two"},
		{"click", "--button", "thumb"},
		{"click", "--modifiers", ","},
		{"click", "1", "2", "--bogus"},
		{"click", "1", "2", "--button"},
		{"move"},
		{"move", "1", "2", "3"},
		{"move", "x", "2"},
		{"mousedown", "--button", "fifth"},
		{"drag", "1", "2", "3"},
		{"drag", "1", "2", "3", "4", "5"},
		{"drag", "1", "2", "3", "y"},
		{"scroll"},
		{"scroll", "sideways"},
		{"scroll", "down", "0"},
		{"scroll", "down", "1.5"},
		{"type"},
		{"type", "a", "b"},
		{"type", ""},
		{"key"},
		{"key", "ctrl+l", ""},
		{"cursor", "now"},
		{"screen", "big"},
		{"windows", "firefox"},
		{"window-title"},
		{"window-title", "firefox"},
		{"focus", "0"},
		{"launch"},
		{"launch", "a", "b", "c"},
		{"launch", "/usr/bin/xterm"},
		{"launch", "--command"},
		{"open"},
		{"clipboard", "get"},
		{"clipboard", "set"},
		{"wait"},
		{"wait", "soon"},
		{"wait", "61000"},
		{"do"},
		{"do", "/no/such/batch.json"},
		{"ready", "now"},
		{"ready", "--wait", "-1s"},
		{"screenshot", "out.png"},
		{"screenshot", "--format", "gif"},
		{"screenshot", "--quality", "50"},
		{"screenshot", "--format", "jpeg", "--quality", "101"},
		{"screenshot", "--region", "1,2,3"},
		{"screenshot", "--region", "0,0,0,10"},
		{"cursor", "--timeout", "0s"},
		{"cursor", "--agent", "ftp://box"},
	}
	a := startAgent(t, clienttest.Options{})
	var all strings.Builder
	for _, args := range cases {
		r := runCLI(t, a, "", args...)
		if r.code != exitUsage || r.stdout != "" {
			t.Errorf("cubicle %q: exit %d, stdout %q; want 2 and nothing", args, r.code, r.stdout)
		}
		all.WriteString(r.transcript())
	}
	for _, c := range []struct{ stdin, name string }{{"", "empty"}, {"{\"actions\": [\n  {\"type\": \"click\",}\n]}", "syntax"},
		{`{"actions":[], "screenshots": {}}`, "unknown field"}, {`[] []`, "two values"}} {
		r := runCLI(t, a, c.stdin, "do", "-")
		if r.code != exitUsage {
			t.Errorf("do with a batch that is %s: exit %d, want 2", c.name, r.code)
		}
		all.WriteString(r.transcript())
	}
	if reqs := a.Requests(); len(reqs) != 0 {
		t.Errorf("usage errors sent %d requests: %v", len(reqs), reqs)
	}
	golden(t, "usage_errors", all.String())
}

// TestCallErrors checks the message, the hint and exit code 1 of calls that
// fail.
func TestCallErrors(t *testing.T) {
	var all strings.Builder
	down := freeURL(t)
	r := runEnv(t, map[string]string{envAgentURL: down}, "", "click", "1", "2")
	all.WriteString(strings.NewReplacer(agentReplacer(down)...).Replace(r.transcript()))

	a := startAgent(t, clienttest.Options{})
	r = runEnv(t, map[string]string{envAgentURL: a.URL}, "", "cursor")
	all.WriteString(r.transcript())
	for _, args := range [][]string{
		{"key", "ctrl", "nosuchkey"},
		{"key", "ctrl+l", "F99"},
		{"click", "5000", "1"},
		{"focus", "99"},
		{"window-title", "12345"},
		{"launch", "--command", "--", ""},
	} {
		all.WriteString(runCLI(t, a, "", args...).transcript())
	}

	a.Override("POST /v1/action", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
	})
	all.WriteString(runCLI(t, a, "", "move", "1", "1").transcript())
	a.Override("GET /v1/cursor", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	all.WriteString(runCLI(t, a, "", "cursor", "--timeout", "20ms").transcript())

	starting := startAgent(t, clienttest.Options{NotReady: "the panel is not mapped yet"})
	all.WriteString(runCLI(t, starting, "", "click", "1", "1").transcript())
	all.WriteString(runCLI(t, starting, "", "ready").transcript())
	all.WriteString(runCLI(t, starting, "", "ready", "--wait", "50ms").transcript())
	golden(t, "call_errors", all.String(), agentReplacer(a.URL)...)
}
