package mcpserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client/clienttest"
	"github.com/cubicle-dev/cubicle/desktop"
)

// lastAction is the last batch the fake agent of id received.
func lastAction(t *testing.T, fake *clienttest.Server, id string) desktop.Batch {
	t.Helper()
	reqs := fake.Agent(id).Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Path == "/v1/actions" {
			var b desktop.Batch
			if err := json.Unmarshal(reqs[i].Body, &b); err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatal("the agent got no batch")
	return desktop.Batch{}
}

func TestDesktopTools(t *testing.T) {
	h := start(t, clienttest.ServerOptions{Agent: clienttest.Options{
		Screen:  desktop.Size{Width: 800, Height: 600},
		Windows: []desktop.Window{{ID: 7, Title: "Terminal", Class: "Xfce4-terminal", Instance: "xfce4-terminal", Focused: true}},
		Files:   map[string][]byte{"/home/user/a.txt": []byte("hello\n"), "/home/user/b.bin": {0xff, 0, 1}},
		RunCommand: func(c clienttest.Command) clienttest.CommandOutput {
			return clienttest.CommandOutput{Stdout: strings.Join(c.Argv, " ") + " in " + c.Cwd, Stderr: c.Env["K"], ExitCode: 2}
		},
	}})
	var sb struct {
		ID      string
		Current bool
	}
	h.ok("create_sandbox", map[string]any{"resolution": "800x600", "metadata": map[string]any{"k": "v"}}, &sb)
	if !sb.Current {
		t.Fatalf("created sandbox is not current: %+v", sb)
	}
	id := sb.ID

	for _, c := range []struct {
		tool string
		args map[string]any
		want desktop.Action
	}{
		{"click", map[string]any{"x": 10, "y": 20, "button": "right", "clicks": 2, "hold_keys": []any{"ctrl"}},
			desktop.Action{Type: desktop.Click, Button: desktop.Right, Count: 2, Modifiers: []string{"ctrl"}}.At(10, 20)},
		{"click", map[string]any{}, desktop.Action{Type: desktop.Click}},
		{"type", map[string]any{"text": "héllo\n", "paste": true}, desktop.Action{Type: desktop.Type, Text: "héllo\n", Paste: true}},
		{"key", map[string]any{"keys": "ctrl+shift+t"}, desktop.Action{Type: desktop.Key, Keys: []string{"ctrl", "shift", "t"}}},
		{"key", map[string]any{"keys": "+"}, desktop.Action{Type: desktop.Key, Keys: []string{"+"}}},
		{"key", map[string]any{"keys": "ctrl++"}, desktop.Action{Type: desktop.Key, Keys: []string{"ctrl", "plus"}}},
		{"scroll", map[string]any{"direction": "up"}, desktop.Action{Type: desktop.Scroll, DY: -3}},
		{"scroll", map[string]any{"direction": "left", "amount": 5, "x": 1, "y": 2}, desktop.Action{Type: desktop.Scroll, DX: -5}.At(1, 2)},
		{"drag", map[string]any{"from": map[string]any{"x": 1, "y": 2}, "to": map[string]any{"x": 3, "y": 4}},
			desktop.Action{Type: desktop.Drag, Path: []desktop.Point{{X: 1, Y: 2}, {X: 3, Y: 4}}}},
		{"drag", map[string]any{"path": []any{map[string]any{"x": 1, "y": 2}, map[string]any{"x": 5, "y": 6}, map[string]any{"x": 3, "y": 4}}, "button": "middle"},
			desktop.Action{Type: desktop.Drag, Button: desktop.Middle, Path: []desktop.Point{{X: 1, Y: 2}, {X: 5, Y: 6}, {X: 3, Y: 4}}}},
		{"move_mouse", map[string]any{"x": 799, "y": 599}, desktop.Action{Type: desktop.Move}.At(799, 599)},
		{"open", map[string]any{"target": "https://example.com"}, desktop.Action{Type: desktop.Open, Target: "https://example.com"}},
		{"launch_app", map[string]any{"app": "firefox-esr", "uri": "https://example.com"}, desktop.Action{Type: desktop.Launch, App: "firefox-esr", URI: "https://example.com"}},
		{"launch_app", map[string]any{"command": []any{"xeyes", "-fg", "red"}}, desktop.Action{Type: desktop.Launch, Command: []string{"xeyes", "-fg", "red"}}},
	} {
		h.ok(c.tool, c.args, nil)
		b := lastAction(t, h.fake, id)
		if diff := cmp.Diff(desktop.Batch{Actions: []desktop.Action{c.want}}, b); diff != "" {
			t.Errorf("%s(%v) sent (-want +got):\n%s", c.tool, c.args, diff)
		}
	}

	t.Run("settle and screenshot", func(t *testing.T) {
		var out actionOut
		res := h.ok("click", map[string]any{"x": 5, "y": 6, "screenshot": true}, &out)
		if w, hgt := pngSize(t, res); w != 800 || hgt != 600 {
			t.Errorf("screenshot %dx%d, want 800x600", w, hgt)
		}
		b := lastAction(t, h.fake, id)
		if diff := cmp.Diff(&desktop.Settle{QuietMS: defaultQuietMS, TimeoutMS: settleLimitMS}, b.Settle); diff != "" {
			t.Errorf("settle (-want +got):\n%s", diff)
		}
		if b.Screenshot == nil || out.Settled == nil || !*out.Settled || out.Screenshot == nil || *out.Cursor != (desktop.Point{X: 5, Y: 6}) {
			t.Errorf("batch %+v, output %+v", b, out)
		}
		res = h.ok("key", map[string]any{"keys": "Return", "settle_ms": 800}, &out)
		b = lastAction(t, h.fake, id)
		if b.Screenshot != nil || b.Settle == nil || b.Settle.QuietMS != 800 || len(res.Content) != 1 {
			t.Errorf("settle without screenshot: batch %+v, %d contents", b, len(res.Content))
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		for _, c := range []struct {
			args   map[string]any
			w, hgt int
		}{
			{nil, 800, 600},
			{map[string]any{"scale": 0.5}, 400, 300},
			{map[string]any{"region": map[string]any{"x": 10, "y": 10, "width": 100, "height": 50}}, 100, 50},
			{map[string]any{"region": map[string]any{"x": 10, "y": 10, "width": 100, "height": 50}, "scale": 0.5, "cursor": true}, 50, 25},
		} {
			var out screenshotOut
			res := h.ok("screenshot", c.args, &out)
			w, hgt := pngSize(t, res)
			if w != c.w || hgt != c.hgt || out.Width != c.w || out.Height != c.hgt {
				t.Errorf("screenshot(%v) = %dx%d (said %dx%d), want %dx%d", c.args, w, hgt, out.Width, out.Height, c.w, c.hgt)
			}
		}
	})

	t.Run("cursor and windows", func(t *testing.T) {
		h.ok("move_mouse", map[string]any{"x": 33, "y": 44}, nil)
		var p desktop.Point
		h.ok("cursor_position", nil, &p)
		if p != (desktop.Point{X: 33, Y: 44}) {
			t.Errorf("cursor %v", p)
		}
		var ws windowsOut
		h.ok("list_windows", map[string]any{"class": "xfce4-terminal"}, &ws)
		if len(ws.Windows) != 1 || ws.Windows[0].ID != 7 {
			t.Errorf("windows %+v", ws)
		}
		h.ok("list_windows", map[string]any{"title": "nothing like it"}, &ws)
		if len(ws.Windows) != 0 {
			t.Errorf("windows by title %+v", ws)
		}
	})

	t.Run("commands", func(t *testing.T) {
		var out commandOut
		h.ok("run_command", map[string]any{"command": "make", "cwd": "/src", "env": map[string]any{"K": "v"}, "timeout_s": 5}, &out)
		if out.ExitCode == nil || *out.ExitCode != 2 || out.Stdout != "bash -l -c make in /src" || out.Stderr != "v" {
			t.Errorf("run_command = %+v", out)
		}
		var bg commandOut
		h.ok("run_command", map[string]any{"command": "sleep 100", "background": true}, &bg)
		if bg.PID == 0 || bg.ExitCode != nil {
			t.Errorf("background run_command = %+v", bg)
		}
	})

	t.Run("files", func(t *testing.T) {
		var r readOut
		h.ok("read_file", map[string]any{"path": "/home/user/a.txt"}, &r)
		if r != (readOut{Path: "/home/user/a.txt", Size: 6, Encoding: "utf-8", Content: "hello\n"}) {
			t.Errorf("read text = %+v", r)
		}
		h.ok("read_file", map[string]any{"path": "/home/user/b.bin"}, &r)
		if r.Encoding != "base64" || r.Content != "/wAB" {
			t.Errorf("read bytes = %+v", r)
		}
		var w writeOut
		h.ok("write_file", map[string]any{"path": "/home/user/c.bin", "content": "AAEC", "encoding": "base64"}, &w)
		if got, _ := h.fake.Agent(id).File("/home/user/c.bin"); string(got) != "\x00\x01\x02" || w.Size != 3 {
			t.Errorf("wrote %q, %+v", got, w)
		}
		shot := h.ok("screenshot", nil, nil).Content[0].(*mcp.ImageContent).Data
		h.ok("write_file", map[string]any{"path": "/home/user/shot.png", "content": string(shot)}, nil)
		h.fake.Agent(id).SetFile("/home/user/shot.png", shot)
		res := h.ok("read_file", map[string]any{"path": "/home/user/shot.png"}, &r)
		if r.Encoding != "image" {
			t.Errorf("read a PNG as %q", r.Encoding)
		}
		pngSize(t, res)
	})

	t.Run("sandboxes", func(t *testing.T) {
		var other struct{ ID string }
		h.ok("create_sandbox", nil, &other)
		var list listOut
		h.ok("list_sandboxes", nil, &list)
		if len(list.Sandboxes) != 2 || list.Current != other.ID {
			t.Fatalf("list = %+v", list)
		}
		h.ok("list_sandboxes", map[string]any{"metadata": map[string]any{"k": "v"}}, &list)
		if len(list.Sandboxes) != 1 || list.Sandboxes[0].ID != id || list.Sandboxes[0].Current {
			t.Errorf("list by metadata = %+v", list)
		}
		// An explicit id acts on that sandbox and leaves the current one.
		h.ok("move_mouse", map[string]any{"sandbox_id": id, "x": 1, "y": 1}, nil)
		if got := h.fake.Agent(other.ID).Cursor(); got == (desktop.Point{X: 1, Y: 1}) {
			t.Errorf("the move went to the current sandbox")
		}
		var out sandboxOut
		h.ok("connect_sandbox", map[string]any{"sandbox_id": id, "timeout_s": 60}, &out)
		if !out.Current || out.ID != id {
			t.Errorf("connect = %+v", out)
		}
		var k killOut
		h.ok("kill_sandbox", nil, &k)
		if k.Killed != id {
			t.Errorf("killed %q, want %s", k.Killed, id)
		}
		if res := h.call("screenshot", nil); !res.IsError || !strings.Contains(text(res), "no current sandbox") {
			t.Errorf("after kill: %s", text(res))
		}
		h.ok("kill_sandbox", map[string]any{"sandbox_id": other.ID}, nil)
	})
}

// TestHTTPSessions serves the streamable HTTP transport: a token is
// needed, and each session has its own current sandbox.
func TestHTTPSessions(t *testing.T) {
	fake := clienttest.StartServer(t, clienttest.ServerOptions{})
	s := newServer(t, fake)
	hs := httptest.NewServer(s.Handler("s3cret"))
	// Runs last: the sessions' event streams end first.
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
	})

	resp, err := http.Post(hs.URL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %s, want 401", resp.Status)
	}

	ctx := context.Background()
	connect := func(token string) *mcp.ClientSession {
		t.Helper()
		hc := &http.Client{Transport: bearer{token: token}}
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
			Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL, HTTPClient: hc}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	if _, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL, HTTPClient: &http.Client{Transport: bearer{token: "wrong"}}}, nil); err == nil {
		t.Error("a wrong token connected")
	}
	a, b := connect("s3cret"), connect("s3cret")
	call := func(cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	ra := call(a, "create_sandbox", nil)
	call(b, "create_sandbox", nil)
	idA := ra.StructuredContent.(map[string]any)["id"].(string)
	la := call(a, "list_sandboxes", nil).StructuredContent.(map[string]any)
	lb := call(b, "list_sandboxes", nil).StructuredContent.(map[string]any)
	if la["current"] != idA || lb["current"] == idA || lb["current"] == nil {
		t.Errorf("current of a %v, of b %v; want each its own", la["current"], lb["current"])
	}
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}
