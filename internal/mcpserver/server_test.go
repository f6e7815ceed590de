package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/client/clienttest"
)

// harness is an MCP client session with a Server in process, over the
// SDK's in-memory transport, and the fake Cubicle server behind it.
type harness struct {
	t     *testing.T
	fake  *clienttest.Server
	cs    *mcp.ClientSession
	tools map[string]*mcp.Tool
}

func newServer(t *testing.T, fake *clienttest.Server) *Server {
	t.Helper()
	c, err := client.New(fake.URL, clienttest.TestAPIKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := New(Config{Server: c, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func start(t *testing.T, o clienttest.ServerOptions) *harness {
	t.Helper()
	fake := clienttest.StartServer(t, o)
	s := newServer(t, fake)
	ct, st := mcp.NewInMemoryTransports()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunTransport(ctx, st) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunTransport: %v", err)
		}
	})
	h := &harness{t: t, fake: fake, cs: cs, tools: map[string]*mcp.Tool{}}
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range res.Tools {
		h.tools[tl.Name] = tl
	}
	return h
}

// call calls a tool; a successful result's structured content must match
// the tool's output schema.
func (h *harness) call(name string, args map[string]any) *mcp.CallToolResult {
	h.t.Helper()
	res, err := h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		h.t.Fatalf("%s: protocol error: %v", name, err)
	}
	if !res.IsError {
		checkOutput(h.t, h.tools[name], res.StructuredContent)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured output.
func (h *harness) ok(name string, args map[string]any, out any) *mcp.CallToolResult {
	h.t.Helper()
	res := h.call(name, args)
	if res.IsError {
		h.t.Fatalf("%s(%v): %s", name, args, text(res))
	}
	if out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s: output %s: %v", name, b, err)
		}
	}
	return res
}

func checkOutput(t *testing.T, tool *mcp.Tool, out any) {
	t.Helper()
	b, err := json.Marshal(tool.OutputSchema)
	if err != nil {
		t.Fatal(err)
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Resolve(nil)
	if err != nil {
		t.Fatalf("%s: output schema: %v", tool.Name, err)
	}
	b, _ = json.Marshal(out)
	var v any
	json.Unmarshal(b, &v)
	if err := rs.Validate(v); err != nil {
		t.Errorf("%s: output %s does not match its schema: %v", tool.Name, b, err)
	}
}

func text(res *mcp.CallToolResult) string {
	var s []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			s = append(s, tc.Text)
		}
	}
	return strings.Join(s, "\n")
}

func pngSize(t *testing.T, res *mcp.CallToolResult) (int, int) {
	t.Helper()
	for _, c := range res.Content {
		if ic, ok := c.(*mcp.ImageContent); ok {
			img, err := png.Decode(bytes.NewReader(ic.Data))
			if err != nil || ic.MIMEType != "image/png" {
				t.Fatalf("image %s: %v", ic.MIMEType, err)
			}
			return img.Bounds().Dx(), img.Bounds().Dy()
		}
	}
	t.Fatalf("no image in %s", text(res))
	return 0, 0
}

func TestToolSchemas(t *testing.T) {
	h := start(t, clienttest.ServerOptions{})
	want := []string{"click", "connect_sandbox", "create_sandbox", "cursor_position", "drag", "get_live_view_url", "key",
		"kill_sandbox", "launch_app", "list_sandboxes", "list_windows", "move_mouse", "open", "read_file",
		"run_command", "screenshot", "scroll", "type", "write_file"}
	var got []string
	for name := range h.tools {
		got = append(got, name)
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	for name, tl := range h.tools {
		if tl.Description == "" || tl.Annotations == nil || tl.OutputSchema == nil {
			t.Errorf("%s: description %q, annotations %v, output schema %v", name, tl.Description, tl.Annotations, tl.OutputSchema)
		}
		b, _ := json.Marshal(tl.InputSchema)
		var s jsonschema.Schema
		if err := json.Unmarshal(b, &s); err != nil || s.Type != "object" {
			t.Fatalf("%s: input schema %s: %v", name, b, err)
		}
		if _, err := s.Resolve(nil); err != nil {
			t.Errorf("%s: input schema does not resolve: %v", name, err)
		}
		var undescribed func(path string, s *jsonschema.Schema)
		undescribed = func(path string, s *jsonschema.Schema) {
			for p, ps := range s.Properties {
				if ps.Description == "" && path == "" {
					t.Errorf("%s: argument %s has no description", name, p)
				}
				if len(ps.Types) > 0 {
					t.Errorf("%s: argument %s has the type union %v", name, p, ps.Types)
				}
				undescribed(path+"."+p, ps)
			}
		}
		undescribed("", &s)
	}
}

func TestNoCurrentSandbox(t *testing.T) {
	h := start(t, clienttest.ServerOptions{})
	for _, name := range []string{"screenshot", "click", "run_command", "kill_sandbox", "cursor_position"} {
		args := map[string]any{}
		if name == "run_command" {
			args["command"] = "true"
		}
		res := h.call(name, args)
		if !res.IsError || !strings.Contains(text(res), name+": invalid_argument: no current sandbox") {
			t.Errorf("%s without a sandbox = %v %q", name, res.IsError, text(res))
		}
	}
}

func TestBadArguments(t *testing.T) {
	h := start(t, clienttest.ServerOptions{})
	h.ok("create_sandbox", nil, nil)
	for _, c := range []struct {
		name string
		tool string
		args map[string]any
		want string
	}{
		{"unknown argument", "click", map[string]any{"x": 1, "y": 1, "z": 1}, `click: invalid_argument: unknown argument "z"; this tool takes sandbox_id, x, y, button`},
		{"x alone", "click", map[string]any{"x": 1}, "give both x and y"},
		{"negative x", "click", map[string]any{"x": -1, "y": 1}, "x must be at least 0, got -1"},
		{"fraction", "click", map[string]any{"x": 1.5, "y": 1}, "x must be a whole number, got 1.5"},
		{"string x", "click", map[string]any{"x": "10", "y": 1}, `x must be a whole number, got the string "10"`},
		{"null x", "click", map[string]any{"x": nil, "y": 1}, "x is null; leave it out instead"},
		{"off screen", "click", map[string]any{"x": 1024, "y": 0}, "click: out_of_bounds: point (1024, 0) is outside the 1024x768 screen"},
		{"button", "click", map[string]any{"button": "thumb"}, "button must be one of left, right, middle, back, forward"},
		{"clicks", "click", map[string]any{"clicks": 4}, "clicks must be 1 to 3, got 4"},
		{"hold key", "click", map[string]any{"hold_keys": []any{"hyperdrive"}}, `unknown_key: unknown key "hyperdrive"`},
		{"hold keys type", "click", map[string]any{"hold_keys": "ctrl"}, "hold_keys must be an array"},
		{"no text", "type", map[string]any{}, "type: invalid_argument: text is missing: the text to type"},
		{"empty text", "type", map[string]any{"text": ""}, "text is empty"},
		{"no keys", "key", map[string]any{"keys": " "}, "keys is empty"},
		{"unknown key", "key", map[string]any{"keys": "ctrl+hyperdrive"}, `key: unknown_key: unknown key "hyperdrive"`},
		{"direction", "scroll", map[string]any{"direction": "sideways"}, "direction must be one of up, down, left, right"},
		{"amount", "scroll", map[string]any{"direction": "up", "amount": 0.5}, "amount must be a whole number"},
		{"drag nothing", "drag", map[string]any{}, "drag needs from and to"},
		{"drag both", "drag", map[string]any{"from": map[string]any{"x": 1, "y": 1}, "to": map[string]any{"x": 2, "y": 2}, "path": []any{map[string]any{"x": 1, "y": 1}}}, "either path or from and to"},
		{"drag short", "drag", map[string]any{"path": []any{map[string]any{"x": 1, "y": 1}}}, "at least two points, got 1"},
		{"drag point", "drag", map[string]any{"path": []any{map[string]any{"x": 1, "y": 1}, map[string]any{"x": 1}}}, "path[1].y is missing"},
		{"drag point bound", "drag", map[string]any{"from": map[string]any{"x": -5, "y": 1}, "to": map[string]any{"x": 1, "y": 1}}, "from.x must be at least 0, got -5"},
		{"settle", "move_mouse", map[string]any{"x": 1, "y": 1, "settle_ms": 60000}, "settle_ms must be 0 to 10000, got 60000"},
		{"scale", "screenshot", map[string]any{"scale": 0}, "scale must be 0.1 to 1, got 0"},
		{"region", "screenshot", map[string]any{"region": map[string]any{"x": 0, "y": 0, "width": 2000, "height": 10}}, "out_of_bounds"},
		{"region fields", "screenshot", map[string]any{"region": map[string]any{"x": 0, "y": 0, "w": 2}}, "region.width is missing"},
		{"bad id", "screenshot", map[string]any{"sandbox_id": "No Such"}, "screenshot: invalid_argument: connect to sandbox No Such: sandbox id"},
		{"unknown id", "screenshot", map[string]any{"sandbox_id": "nosuchsandbox0000000"}, "screenshot: not_found:"},
		{"command", "run_command", map[string]any{"command": ""}, "command is empty"},
		{"command timeout", "run_command", map[string]any{"command": "true", "timeout_s": 0}, "timeout_s must be 1 to 3600, got 0"},
		{"user", "run_command", map[string]any{"command": "true", "user": "admin"}, "user must be one of user, root"},
		{"env", "run_command", map[string]any{"command": "true", "env": map[string]any{"A": 1}}, "env.A must be a string, got the number 1"},
		{"no path", "read_file", map[string]any{"path": ""}, "path is empty"},
		{"missing file", "read_file", map[string]any{"path": "/nope"}, "read_file: not_found:"},
		{"base64", "write_file", map[string]any{"path": "/tmp/x", "content": "%%%", "encoding": "base64"}, "content is not valid base64"},
		{"encoding", "write_file", map[string]any{"path": "/tmp/x", "content": "", "encoding": "latin1"}, "encoding must be one of utf-8, base64"},
		{"open", "open", map[string]any{"target": ""}, "target is empty"},
		{"launch neither", "launch_app", map[string]any{}, "give either app"},
		{"launch both", "launch_app", map[string]any{"app": "a", "command": []any{"b"}}, "give either app"},
		{"launch uri", "launch_app", map[string]any{"command": []any{"b"}, "uri": "x"}, "uri goes with app"},
		{"resolution", "create_sandbox", map[string]any{"resolution": "huge"}, `resolution "huge" is not in the expected form`},
		{"resolution range", "create_sandbox", map[string]any{"resolution": "10x10"}, "each 64 to 8192"},
		{"timeout", "create_sandbox", map[string]any{"timeout_s": -1}, "timeout_s must be 1 to 86400, got -1"},
		{"metadata", "create_sandbox", map[string]any{"metadata": []any{"a"}}, "metadata must be an object, got an array"},
		{"connect", "connect_sandbox", map[string]any{}, "sandbox_id is missing"},
		{"live view ttl", "get_live_view_url", map[string]any{"ttl_s": 0}, "ttl_s must be 1 to 604800, got 0"},
		{"connect unknown", "connect_sandbox", map[string]any{"sandbox_id": "nosuchsandbox0000000"}, "connect_sandbox: not_found:"},
		{"kill unknown", "kill_sandbox", map[string]any{"sandbox_id": "nosuchsandbox0000000"}, "kill_sandbox: not_found:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := h.call(c.tool, c.args)
			if got := text(res); !res.IsError || !strings.Contains(got, c.want) {
				t.Errorf("%s(%v) = error %v, %q; want a tool error with %q", c.tool, c.args, res.IsError, got, c.want)
			}
		})
	}
	// Raw arguments that are not an object.
	res, err := h.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "click", Arguments: []any{1}})
	if err != nil || !res.IsError || !strings.Contains(text(res), "the arguments must be a JSON object, got an array") {
		t.Errorf("click with an array = %v, %v", text(res), err)
	}
}
