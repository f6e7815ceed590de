package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// target names the sandbox a tool acts on.
type target struct {
	SandboxID string `json:"sandbox_id,omitempty" jsonschema:"the sandbox to act on; default: the current sandbox (the last one created or connected in this session)"`
}

// sandboxOut describes a sandbox to a model. It never holds the access
// token.
type sandboxOut struct {
	ID         string            `json:"id"`
	Template   string            `json:"template"`
	State      string            `json:"state"`
	Resolution string            `json:"resolution"`
	StartedAt  time.Time         `json:"started_at"`
	EndAt      time.Time         `json:"end_at" jsonschema:"when the sandbox's timeout kills it"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	Current    bool              `json:"current" jsonschema:"whether this is the session's current sandbox"`
}

func describe(info *client.SandboxInfo, current string) sandboxOut {
	return sandboxOut{
		ID: info.ID, Template: info.Template, State: info.State,
		Resolution: fmt.Sprintf("%dx%d", info.Resolution.Width, info.Resolution.Height),
		StartedAt:  info.StartedAt, EndAt: info.EndAt, Metadata: info.Metadata,
		Current: info.ID != "" && info.ID == current,
	}
}

type createIn struct {
	Template   string            `json:"template,omitempty" jsonschema:"root filesystem to start from; default \"desktop\" (XFCE, Firefox ESR, a terminal)"`
	Resolution string            `json:"resolution,omitempty" jsonschema:"screen size as WIDTHxHEIGHT, e.g. \"1280x800\"; default 1024x768"`
	TimeoutS   int               `json:"timeout_s,omitempty" jsonschema:"seconds the sandbox lives before it is killed; default 300"`
	Metadata   map[string]string `json:"metadata,omitempty" jsonschema:"labels to find the sandbox by in list_sandboxes"`
}

type connectIn struct {
	SandboxID string `json:"sandbox_id" jsonschema:"the id of a running or paused sandbox (from list_sandboxes)"`
	TimeoutS  int    `json:"timeout_s,omitempty" jsonschema:"when set, the sandbox lives this many seconds from now"`
}

type listIn struct {
	Metadata map[string]string `json:"metadata,omitempty" jsonschema:"keep only sandboxes whose metadata has all these pairs"`
}

type listOut struct {
	Sandboxes []sandboxOut `json:"sandboxes"`
	Current   string       `json:"current,omitempty" jsonschema:"the id of the session's current sandbox"`
}

type killOut struct {
	Killed string `json:"killed"`
}

// maxListed bounds list_sandboxes.
const maxListed = 500

func (s *Server) registerSandboxTools() {
	addTool(s, &mcp.Tool{
		Name:  "create_sandbox",
		Title: "Create a desktop sandbox",
		Description: "Start a new Linux desktop sandbox and make it the current sandbox. It answers once the desktop " +
			"is ready (usually 5-30 s). Take a screenshot next to see it.",
		Annotations: &mcp.ToolAnnotations{OpenWorldHint: new(false)},
	}, createCallLimit, func(p map[string]*jsonschema.Schema) {
		between(p["timeout_s"], 1, 86400)
		p["resolution"].Pattern = `^[0-9]+x[0-9]+$`
	}, s.createSandbox)

	addTool(s, &mcp.Tool{
		Name:        "connect_sandbox",
		Title:       "Connect to a sandbox",
		Description: "Make an existing sandbox the current one (resuming it when paused).",
		Annotations: &mcp.ToolAnnotations{IdempotentHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		between(p["timeout_s"], 1, 86400)
	}, s.connectSandbox)

	addTool(s, &mcp.Tool{
		Name:        "list_sandboxes",
		Title:       "List sandboxes",
		Description: "List the running and paused sandboxes, and which one is current.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, nil, s.listSandboxes)

	addTool(s, &mcp.Tool{
		Name:        "kill_sandbox",
		Title:       "Kill a sandbox",
		Description: "Stop a sandbox and delete it with everything in it. Default: the current sandbox.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: new(true), IdempotentHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, nil, s.killSandbox)
}

// parseResolution reads "WIDTHxHEIGHT".
func parseResolution(s string) (desktop.Size, error) {
	if s == "" {
		return desktop.Size{}, nil
	}
	w, h, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || wi < 64 || hi < 64 || wi > 8192 || hi > 8192 {
		return desktop.Size{}, invalid("resolution", "resolution %q is not WIDTHxHEIGHT with each 64 to 8192, e.g. \"1280x800\"", s)
	}
	return desktop.Size{Width: wi, Height: hi}, nil
}

func (s *Server) createSandbox(ctx context.Context, req *mcp.CallToolRequest, in createIn) (*mcp.CallToolResult, sandboxOut, error) {
	size, err := parseResolution(in.Resolution)
	if err != nil {
		return nil, sandboxOut{}, err
	}
	sb, err := s.srv.Create(ctx, client.CreateOptions{
		Template: in.Template, Resolution: size,
		Timeout: time.Duration(in.TimeoutS) * time.Second, Metadata: in.Metadata,
	})
	if err != nil {
		return nil, sandboxOut{}, err
	}
	return s.adopt(ctx, req, sb)
}

func (s *Server) connectSandbox(ctx context.Context, req *mcp.CallToolRequest, in connectIn) (*mcp.CallToolResult, sandboxOut, error) {
	if in.SandboxID == "" {
		return nil, sandboxOut{}, invalid("sandbox_id", "sandbox_id is empty; list_sandboxes shows the ids")
	}
	sb, err := s.srv.Connect(ctx, in.SandboxID, client.ConnectOptions{Timeout: time.Duration(in.TimeoutS) * time.Second})
	if err != nil {
		return nil, sandboxOut{}, err
	}
	return s.adopt(ctx, req, sb)
}

// adopt keeps sb, makes it the session's current sandbox and describes it.
func (s *Server) adopt(ctx context.Context, req *mcp.CallToolRequest, sb *client.Sandbox) (*mcp.CallToolResult, sandboxOut, error) {
	s.remember(sb)
	current := ""
	if s.setCurrent(req, sb.ID()) {
		current = sb.ID()
	}
	info, err := sb.Info(ctx)
	if err != nil {
		return nil, sandboxOut{}, err
	}
	out := describe(info, current)
	res, err := textResult(out)
	return res, out, err
}

func (s *Server) listSandboxes(ctx context.Context, req *mcp.CallToolRequest, in listIn) (*mcp.CallToolResult, listOut, error) {
	current := s.currentID(req)
	out := listOut{Sandboxes: []sandboxOut{}, Current: current}
	for info, err := range s.srv.All(ctx, client.ListOptions{Metadata: in.Metadata}) {
		if err != nil {
			return nil, listOut{}, err
		}
		out.Sandboxes = append(out.Sandboxes, describe(&info, current))
		if len(out.Sandboxes) == maxListed {
			break
		}
	}
	res, err := textResult(out)
	return res, out, err
}

func (s *Server) killSandbox(ctx context.Context, req *mcp.CallToolRequest, in target) (*mcp.CallToolResult, killOut, error) {
	id := in.SandboxID
	if id == "" {
		if id = s.currentID(req); id == "" {
			return nil, killOut{}, errNoCurrent()
		}
	}
	err := s.srv.Kill(ctx, id)
	if err != nil && !errors.Is(err, desktop.ErrNotFound) {
		return nil, killOut{}, err
	}
	s.forget(id)
	if err != nil {
		return nil, killOut{}, fmt.Errorf("sandbox %s: %w", id, err)
	}
	out := killOut{Killed: id}
	res, err := textResult(out)
	return res, out, err
}
