package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
)

// mcpSession is an MCP client session with `cubicle mcp` run over stdio as
// a subprocess, the way MCP clients run it.
type mcpSession struct {
	t  *testing.T
	cs *mcp.ClientSession
}

// call calls a tool and returns its result; a protocol error fails the test.
func (m *mcpSession) call(name string, args map[string]any) *mcp.CallToolResult {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := m.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		m.t.Fatalf("%s: protocol error: %v", name, err)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured output
// into out (when not nil).
func (m *mcpSession) ok(name string, args map[string]any, out any) *mcp.CallToolResult {
	m.t.Helper()
	res := m.call(name, args)
	if res.IsError {
		m.t.Fatalf("%s(%v): tool error: %s", name, args, resultText(res))
	}
	if out != nil {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			m.t.Fatal(err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			m.t.Fatalf("%s: structured output %s: %v", name, b, err)
		}
	}
	return res
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// resultImage decodes the one PNG image of res.
func resultImage(t *testing.T, res *mcp.CallToolResult) image.Image {
	t.Helper()
	for _, c := range res.Content {
		if ic, ok := c.(*mcp.ImageContent); ok {
			if ic.MIMEType != "image/png" {
				t.Fatalf("image MIME type %q, want image/png", ic.MIMEType)
			}
			img, err := png.Decode(bytes.NewReader(ic.Data))
			if err != nil {
				t.Fatalf("image is not a PNG: %v", err)
			}
			return img
		}
	}
	t.Fatalf("result has no image: %s", resultText(res))
	return nil
}

func TestMCPEndToEnd(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("cubicle serve needs root")
	}
	srv, _ := serveForTest(t)
	if srv.key == "" {
		t.Fatal("the first start printed no API key")
	}
	env := append(os.Environ(), "CUBICLE_URL="+srv.url, "CUBICLE_API_KEY="+srv.key)

	ctx := context.Background()
	cmd := exec.Command(binary, "mcp", "--log-level", "debug")
	cmd.Env = env
	var (
		logMu  sync.Mutex
		mcpLog bytes.Buffer
	)
	cmd.Stderr = &lockedWriter{mu: &logMu, w: &mcpLog}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cubicle-e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("connect to cubicle mcp: %v", err)
	}
	defer func() {
		if err := cs.Close(); err != nil {
			t.Errorf("close the MCP session: %v", err)
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("cubicle mcp log:\n%s", mcpLog.String())
			logMu.Unlock()
		}
	}()
	m := &mcpSession{t: t, cs: cs}

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"create_sandbox", "connect_sandbox", "list_sandboxes", "kill_sandbox",
		"screenshot", "click", "type", "key", "scroll", "drag", "move_mouse", "cursor_position",
		"run_command", "read_file", "write_file", "open", "launch_app", "list_windows", "get_live_view_url"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools %v lack %s", names, want)
		}
	}

	var sb struct {
		ID         string `json:"id"`
		Resolution string `json:"resolution"`
		Current    bool   `json:"current"`
	}
	m.ok("create_sandbox", map[string]any{"timeout_s": 900, "resolution": "1024x768", "metadata": map[string]any{"suite": "mcp-e2e"}}, &sb)
	if sb.ID == "" || sb.Resolution != "1024x768" || !sb.Current {
		t.Fatalf("create_sandbox answered %+v", sb)
	}
	// However the test ends, the sandbox goes.
	defer func() {
		c, err := client.New(srv.url, srv.key)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		kctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c.Kill(kctx, sb.ID)
	}()

	t.Run("screen", func(t *testing.T) {
		m := &mcpSession{t: t, cs: cs}
		img := resultImage(t, m.ok("screenshot", nil, nil))
		if got := img.Bounds().Size(); got != (image.Point{1024, 768}) || uniform(img) {
			t.Errorf("screenshot %v, uniform %v; want a 1024x768 desktop", got, uniform(img))
		}
		img = resultImage(t, m.ok("screenshot", map[string]any{"scale": 0.5}, nil))
		if got := img.Bounds().Size(); got != (image.Point{512, 384}) {
			t.Errorf("screenshot at scale 0.5 is %v, want 512x384", got)
		}
		img = resultImage(t, m.ok("screenshot", map[string]any{"region": map[string]any{"x": 10, "y": 20, "width": 300, "height": 200}}, nil))
		if got := img.Bounds().Size(); got != (image.Point{300, 200}) {
			t.Errorf("screenshot of a region is %v, want 300x200", got)
		}
		m.ok("move_mouse", map[string]any{"x": 200, "y": 150}, nil)
		var p struct{ X, Y int }
		m.ok("cursor_position", nil, &p)
		if p.X != 200 || p.Y != 150 {
			t.Errorf("cursor at (%d, %d) after move_mouse to (200, 150)", p.X, p.Y)
		}
	})

	t.Run("commands and files", func(t *testing.T) {
		m := &mcpSession{t: t, cs: cs}
		var run struct {
			ExitCode *int   `json:"exit_code"`
			Stdout   string `json:"stdout"`
			Stderr   string `json:"stderr"`
		}
		m.ok("run_command", map[string]any{"command": `echo "$GREETING from $(pwd)"; echo warn >&2; exit 3`,
			"env": map[string]any{"GREETING": "hello"}, "cwd": "/tmp"}, &run)
		if run.ExitCode == nil || *run.ExitCode != 3 || run.Stdout != "hello from /tmp\n" || run.Stderr != "warn\n" {
			t.Errorf("run_command = %+v; want exit 3, stdout %q, stderr %q", run, "hello from /tmp\n", "warn\n")
		}
		var w struct{ Size int64 }
		m.ok("write_file", map[string]any{"path": "~/mcp/notes.txt", "content": "notes ✓\n"}, &w)
		if w.Size != int64(len("notes ✓\n")) {
			t.Errorf("write_file wrote %d bytes", w.Size)
		}
		var r struct{ Encoding, Content string }
		m.ok("read_file", map[string]any{"path": "/home/user/mcp/notes.txt"}, &r)
		if r.Encoding != "utf-8" || r.Content != "notes ✓\n" {
			t.Errorf("read_file = %+v", r)
		}
		m.ok("write_file", map[string]any{"path": "~/mcp/bytes.bin", "content": "AAEC/w==", "encoding": "base64"}, nil)
		m.ok("read_file", map[string]any{"path": "~/mcp/bytes.bin"}, &r)
		if r.Encoding != "base64" || r.Content != "AAEC/w==" {
			t.Errorf("read_file of bytes = %+v", r)
		}
	})

	t.Run("apps and input", func(t *testing.T) {
		m := &mcpSession{t: t, cs: cs}
		var launched struct {
			PID        int `json:"pid"`
			Screenshot *struct{ Width, Height int }
		}
		res := m.ok("launch_app", map[string]any{"app": "xfce4-terminal", "screenshot": true}, &launched)
		resultImage(t, res)
		if launched.PID <= 0 || launched.Screenshot == nil {
			t.Errorf("launch_app = %+v", launched)
		}
		var term struct {
			ID                  uint32
			X, Y, Width, Height int
		}
		waitFor(t, "the terminal window", time.Minute, func() (bool, string) {
			var out struct {
				Windows []struct {
					ID                  uint32
					X, Y, Width, Height int
				}
			}
			m.ok("list_windows", map[string]any{"class": "xfce4-terminal"}, &out)
			if len(out.Windows) == 0 {
				return false, "no window of class xfce4-terminal"
			}
			term = out.Windows[0]
			return true, ""
		})
		cx, cy := term.X+term.Width/2, term.Y+term.Height/2
		m.ok("click", map[string]any{"x": cx, "y": cy}, nil)
		m.ok("type", map[string]any{"text": "echo typed-through-mcp > ~/mcp/typed.txt"}, nil)
		res = m.ok("key", map[string]any{"keys": "Return", "screenshot": true}, nil)
		resultImage(t, res)
		waitFor(t, "the typed command to run", time.Minute, func() (bool, string) {
			res := m.call("read_file", map[string]any{"path": "~/mcp/typed.txt"})
			if res.IsError {
				return false, resultText(res)
			}
			var r struct{ Content string }
			b, _ := json.Marshal(res.StructuredContent)
			json.Unmarshal(b, &r)
			return r.Content == "typed-through-mcp\n", r.Content
		})
		m.ok("scroll", map[string]any{"direction": "up", "amount": 2, "x": cx, "y": cy}, nil)
		var dragged struct{ Cursor struct{ X, Y int } }
		m.ok("drag", map[string]any{"from": map[string]any{"x": cx, "y": cy}, "to": map[string]any{"x": cx + 40, "y": cy + 10}}, &dragged)
		if dragged.Cursor.X != cx+40 || dragged.Cursor.Y != cy+10 {
			t.Errorf("after drag the cursor is at %+v, want (%d, %d)", dragged.Cursor, cx+40, cy+10)
		}
		m.ok("click", map[string]any{"x": cx, "y": cy, "clicks": 3, "button": "left", "hold_keys": []string{"shift"}}, nil)
		m.ok("key", map[string]any{"keys": "ctrl+shift+c"}, nil)
		var opened struct{ PID int }
		m.ok("open", map[string]any{"target": "/home/user/mcp"}, &opened)
		if opened.PID <= 0 {
			t.Errorf("open gave pid %d", opened.PID)
		}
	})

	t.Run("sandboxes", func(t *testing.T) {
		m := &mcpSession{t: t, cs: cs}
		var list struct {
			Sandboxes []struct {
				ID      string
				Current bool
			}
			Current string
		}
		m.ok("list_sandboxes", map[string]any{"metadata": map[string]any{"suite": "mcp-e2e"}}, &list)
		if len(list.Sandboxes) != 1 || list.Sandboxes[0].ID != sb.ID || !list.Sandboxes[0].Current || list.Current != sb.ID {
			t.Errorf("list_sandboxes = %+v, want only %s, current", list, sb.ID)
		}
		m.ok("connect_sandbox", map[string]any{"sandbox_id": sb.ID}, nil)
		var lv struct {
			URL      string `json:"url"`
			ViewOnly bool   `json:"view_only"`
		}
		m.ok("get_live_view_url", map[string]any{"view_only": true, "ttl_s": 120}, &lv)
		if !strings.HasPrefix(lv.URL, "http") || !lv.ViewOnly {
			t.Errorf("get_live_view_url = %+v", lv)
		} else if resp, err := http.Get(lv.URL); err != nil {
			t.Errorf("GET the live view: %v", err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET the live view: %s", resp.Status)
			}
		}
		m.ok("cursor_position", map[string]any{"sandbox_id": sb.ID}, nil)
	})

	t.Run("bad input gives tool errors", func(t *testing.T) {
		m := &mcpSession{t: t, cs: cs}
		for _, c := range []struct {
			tool string
			args map[string]any
			want string
		}{
			{"click", map[string]any{"x": 5000, "y": 10}, "out_of_bounds"},
			{"click", map[string]any{"x": -1, "y": 10}, "x must be at least 0"},
			{"click", map[string]any{"x": 10}, "both x and y"},
			{"click", map[string]any{"x": 10, "y": 10, "button": "thumb"}, "button must be one of"},
			{"key", map[string]any{"keys": "ctrl+nosuchkey"}, "unknown_key"},
			{"key", map[string]any{}, "keys is missing"},
			{"type", map[string]any{}, "text is missing"},
			{"scroll", map[string]any{"direction": "sideways"}, "direction must be one of"},
			{"drag", map[string]any{"from": map[string]any{"x": 1, "y": 1}}, "from and to"},
			{"screenshot", map[string]any{"scale": 3}, "scale must be 0.1 to 1"},
			{"screenshot", map[string]any{"sandbox_id": "nosuchsandbox0000000"}, "not_found"},
			{"screenshot", map[string]any{"sandbox_id": "Not An Id"}, "invalid_argument"},
			{"connect_sandbox", map[string]any{}, "sandbox_id is missing"},
			{"read_file", map[string]any{"path": "/no/such/file"}, "not_found"},
			{"launch_app", map[string]any{"app": "no-such-app-xyz"}, "not_found"},
			{"create_sandbox", map[string]any{"resolution": "big"}, "resolution"},
			{"run_command", map[string]any{"command": "true", "timeout": 5}, `unknown argument "timeout"`},
		} {
			res := m.call(c.tool, c.args)
			if txt := resultText(res); !res.IsError || !strings.Contains(txt, c.want) {
				t.Errorf("%s(%v) = error %v %q; want a tool error with %q", c.tool, c.args, res.IsError, txt, c.want)
			}
		}
	})

	t.Run("npm MCP SDK", func(t *testing.T) {
		runNodeMCP(t, append(env, "CUBICLE_BIN="+binary, "CUBICLE_SANDBOX="+sb.ID))
	})

	t.Run("kill", func(t *testing.T) {
		m := &mcpSession{t: t, cs: cs}
		var k struct{ Killed string }
		m.ok("kill_sandbox", nil, &k)
		if k.Killed != sb.ID {
			t.Errorf("kill_sandbox killed %q, want %s", k.Killed, sb.ID)
		}
		res := m.call("screenshot", nil)
		if txt := resultText(res); !res.IsError || !strings.Contains(txt, "no current sandbox") {
			t.Errorf("screenshot after kill = %v %q; want the no-current-sandbox error", res.IsError, txt)
		}
	})
}

// runNodeMCP runs compat/mcp's node tests, which drive `cubicle mcp` with
// the npm MCP SDK, with env; it installs the pinned packages when they are
// missing.
func runNodeMCP(t *testing.T, env []string) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (scripts/deps.sh test installs it)")
	}
	dir, err := filepath.Abs("../../compat/mcp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		install := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		install.Dir = dir
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "test/")
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("# pass 1")) {
		t.Errorf("node --test passed nothing:\n%s", out)
	}
}
