package mcpserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Bounds of the system tools.
const (
	defaultCommandS = 60
	maxCommandS     = 3600
	maxOutput       = 100 << 10 // bytes of stdout and of stderr shown to a model
	maxReadBytes    = 10 << 20  // bytes read_file returns at most
	maxWriteBytes   = 50 << 20  // bytes write_file takes at most
)

type commandIn struct {
	target
	Command    string            `json:"command" jsonschema:"a shell command line, run with bash -l -c as the desktop user (DISPLAY is set, so GUI programs show on the screen)"`
	Cwd        string            `json:"cwd,omitempty" jsonschema:"working directory: absolute, ~/... or relative to the home directory; default the home directory"`
	Env        map[string]string `json:"env,omitempty" jsonschema:"environment variables added for this command"`
	TimeoutS   int               `json:"timeout_s,omitempty" jsonschema:"kill the command after this many seconds; default 60"`
	User       string            `json:"user,omitempty" jsonschema:"run as this user; default the desktop user"`
	Background bool              `json:"background,omitempty" jsonschema:"start the command and return its pid at once instead of waiting for it (for programs that keep running, such as GUI apps)"`
}

type commandOut struct {
	PID      int    `json:"pid"`
	ExitCode *int   `json:"exit_code,omitempty" jsonschema:"the exit code; -1 when a signal ended the command; absent for a background command"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	TimedOut bool   `json:"timed_out,omitempty" jsonschema:"the command ran into its timeout and was killed"`
	Signal   string `json:"signal,omitempty" jsonschema:"the signal that ended the command"`
	Error    string `json:"error,omitempty"`
	// Truncated says that stdout or stderr were cut to maxOutput bytes.
	Truncated bool `json:"truncated,omitempty" jsonschema:"stdout or stderr were longer and only their ends are shown"`
}

type readIn struct {
	target
	Path string `json:"path" jsonschema:"absolute path, or ~/... in the desktop user's home"`
}

type readOut struct {
	Path     string `json:"path"`
	Size     int    `json:"size" jsonschema:"bytes in the file"`
	Encoding string `json:"encoding" jsonschema:"utf-8 (content is the text), base64 (content is the bytes in base64) or image (the image is returned as image content)"`
	Content  string `json:"content,omitempty"`
}

type writeIn struct {
	target
	Path     string `json:"path" jsonschema:"absolute path, or ~/... in the desktop user's home; missing directories are made"`
	Content  string `json:"content" jsonschema:"what the file will hold"`
	Encoding string `json:"encoding,omitempty" jsonschema:"utf-8 (default): content is text; base64: content is bytes in base64"`
}

type writeOut struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

type openIn struct {
	target
	Target string `json:"target" jsonschema:"a URL (opens in the web browser) or a file path (opens in its default application)"`
	settleIn
}

type launchIn struct {
	target
	App     string   `json:"app,omitempty" jsonschema:"an application by its .desktop name, e.g. \"firefox-esr\", \"xfce4-terminal\", \"thunar\", \"mousepad\""`
	Command []string `json:"command,omitempty" jsonschema:"or a program and its arguments, run without a shell, e.g. [\"xeyes\"]"`
	URI     string   `json:"uri,omitempty" jsonschema:"a file or URL to hand to app"`
	settleIn
}

func (s *Server) registerSystemTools() {
	addTool(s, &mcp.Tool{
		Name:  "run_command",
		Title: "Run a shell command",
		Description: "Run a shell command in the sandbox and return its stdout, stderr and exit code. A non-zero exit " +
			"code is reported in the result, not as a failure. For programs that keep running, pass background: true.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(true)},
	}, (maxCommandS+60)*time.Second, func(p map[string]*jsonschema.Schema) {
		between(p["timeout_s"], 1, maxCommandS)
		enum(p["user"], "user", "root")
	}, s.runCommand)

	addTool(s, &mcp.Tool{
		Name:        "read_file",
		Title:       "Read a file",
		Description: "Read a file from the sandbox: text as text, images as images, other bytes as base64 (at most 10 MiB).",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, nil, s.readFile)

	addTool(s, &mcp.Tool{
		Name:        "write_file",
		Title:       "Write a file",
		Description: "Write a file in the sandbox, replacing what it held, as the desktop user.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: new(true), IdempotentHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		enum(p["encoding"], "utf-8", "base64")
	}, s.writeFile)

	addTool(s, &mcp.Tool{
		Name:        "open",
		Title:       "Open a URL or file",
		Description: "Open a URL in the web browser, or a file with its default application, as xdg-open does." + settleDoc,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(true)},
	}, defaultCallLimit, refineSettle, s.open)

	addTool(s, &mcp.Tool{
		Name:        "launch_app",
		Title:       "Launch an application",
		Description: "Start an application by its .desktop name, or a program from its argv, on the desktop." + settleDoc,
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(true)},
	}, defaultCallLimit, refineSettle, s.launchApp)
}

func (s *Server) runCommand(ctx context.Context, req *mcp.CallToolRequest, in commandIn) (*mcp.CallToolResult, commandOut, error) {
	if strings.TrimSpace(in.Command) == "" {
		return nil, commandOut{}, invalid("command", "command is empty")
	}
	if in.TimeoutS < 0 || in.TimeoutS > maxCommandS {
		return nil, commandOut{}, invalid("timeout_s", "timeout_s must be 1 to %d, got %d", maxCommandS, in.TimeoutS)
	}
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, commandOut{}, err
	}
	timeout := in.TimeoutS
	if timeout == 0 {
		timeout = defaultCommandS
	}
	o := client.CommandOptions{Env: in.Env, Cwd: in.Cwd, User: in.User, Timeout: time.Duration(timeout) * time.Second}
	if in.Background {
		h, err := sb.Commands.Start(ctx, in.Command, o)
		if err != nil {
			return nil, commandOut{}, err
		}
		out := commandOut{PID: h.PID}
		res, err := textResult(out)
		return res, out, err
	}
	r, err := sb.Commands.Run(ctx, in.Command, o)
	var exit *client.CommandExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, commandOut{}, err
	}
	out := commandOut{PID: r.PID, ExitCode: &r.ExitCode, TimedOut: r.TimedOut, Signal: r.Signal, Error: r.Error}
	var cut1, cut2 bool
	out.Stdout, cut1 = tail(r.Stdout)
	out.Stderr, cut2 = tail(r.Stderr)
	out.Truncated = cut1 || cut2
	res, err := textResult(out)
	return res, out, err
}

// tail keeps the last maxOutput bytes of s, on a character boundary.
func tail(s string) (string, bool) {
	if len(s) <= maxOutput {
		return s, false
	}
	s = s[len(s)-maxOutput:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s, true
}

func (s *Server) readFile(ctx context.Context, req *mcp.CallToolRequest, in readIn) (*mcp.CallToolResult, readOut, error) {
	if in.Path == "" {
		return nil, readOut{}, invalid("path", "path is empty")
	}
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, readOut{}, err
	}
	rc, err := sb.Files.Open(ctx, in.Path)
	if err != nil {
		return nil, readOut{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxReadBytes+1))
	if err != nil {
		return nil, readOut{}, fmt.Errorf("read %s: %w", in.Path, err)
	}
	if len(data) > maxReadBytes {
		return nil, readOut{}, &desktop.Error{Code: desktop.CodeTooLarge, Field: "path", Index: -1,
			Message: fmt.Sprintf("%s is larger than %d MiB; read a part with run_command (head, tail, grep)", in.Path, maxReadBytes>>20)}
	}
	out := readOut{Path: in.Path, Size: len(data)}
	var extra []mcp.Content
	switch mt := http.DetectContentType(data); {
	case strings.HasPrefix(mt, "image/png"), strings.HasPrefix(mt, "image/jpeg"), strings.HasPrefix(mt, "image/gif"), strings.HasPrefix(mt, "image/webp"):
		out.Encoding = "image"
		extra = append(extra, &mcp.ImageContent{Data: data, MIMEType: mt})
	case utf8.Valid(data):
		out.Encoding, out.Content = "utf-8", string(data)
	default:
		out.Encoding, out.Content = "base64", base64.StdEncoding.EncodeToString(data)
	}
	res, err := textResult(out, extra...)
	return res, out, err
}

func (s *Server) writeFile(ctx context.Context, req *mcp.CallToolRequest, in writeIn) (*mcp.CallToolResult, writeOut, error) {
	if in.Path == "" {
		return nil, writeOut{}, invalid("path", "path is empty")
	}
	data := []byte(in.Content)
	switch in.Encoding {
	case "", "utf-8":
	case "base64":
		var err error
		if data, err = base64.StdEncoding.DecodeString(in.Content); err != nil {
			return nil, writeOut{}, invalid("content", "content is not valid base64: %v", err)
		}
	default:
		return nil, writeOut{}, invalid("encoding", "encoding must be utf-8 or base64, got %q", in.Encoding)
	}
	if len(data) > maxWriteBytes {
		return nil, writeOut{}, &desktop.Error{Code: desktop.CodeTooLarge, Field: "content", Index: -1,
			Message: fmt.Sprintf("content is %d bytes; the limit is %d MiB", len(data), maxWriteBytes>>20)}
	}
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, writeOut{}, err
	}
	info, err := sb.Files.Write(ctx, in.Path, data)
	if err != nil {
		return nil, writeOut{}, err
	}
	out := writeOut{Path: info.Path, Size: info.Size}
	res, err := textResult(out)
	return res, out, err
}

func (s *Server) open(ctx context.Context, req *mcp.CallToolRequest, in openIn) (*mcp.CallToolResult, actionOut, error) {
	if in.Target == "" {
		return nil, actionOut{}, invalid("target", "target is empty; give a URL or a file path")
	}
	return s.act(ctx, req, in.SandboxID, in.settleIn, desktop.Action{Type: desktop.Open, Target: in.Target})
}

func (s *Server) launchApp(ctx context.Context, req *mcp.CallToolRequest, in launchIn) (*mcp.CallToolResult, actionOut, error) {
	if (in.App == "") == (len(in.Command) == 0) {
		return nil, actionOut{}, invalid("app", "give either app (a .desktop name such as \"firefox-esr\") or command (a program and its arguments)")
	}
	if in.URI != "" && in.App == "" {
		return nil, actionOut{}, invalid("uri", "uri goes with app; add it to command instead")
	}
	return s.act(ctx, req, in.SandboxID, in.settleIn, desktop.Action{Type: desktop.Launch, App: in.App, Command: in.Command, URI: in.URI})
}
