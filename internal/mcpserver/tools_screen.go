package mcpserver

import (
	"context"
	"fmt"
	"math"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

type region struct {
	X      int `json:"x" jsonschema:"left edge in screen pixels"`
	Y      int `json:"y" jsonschema:"top edge in screen pixels"`
	Width  int `json:"width" jsonschema:"width in pixels"`
	Height int `json:"height" jsonschema:"height in pixels"`
}

type screenshotIn struct {
	target
	Scale  float64 `json:"scale,omitempty" jsonschema:"shrink the picture by this factor (0.1 to 1; default 1, full size). Coordinates for click and the other actions are always in full-size screen pixels"`
	Region *region `json:"region,omitempty" jsonschema:"capture only this part of the screen"`
	Cursor bool    `json:"cursor,omitempty" jsonschema:"draw the mouse pointer into the picture"`
}

type screenshotOut struct {
	Width  int `json:"width" jsonschema:"width of the picture in pixels"`
	Height int `json:"height" jsonschema:"height of the picture in pixels"`
}

type windowsIn struct {
	target
	Class string `json:"class,omitempty" jsonschema:"keep windows whose WM_CLASS class or instance is this, case ignored (e.g. \"firefox-esr\", \"xfce4-terminal\")"`
	Title string `json:"title,omitempty" jsonschema:"keep windows whose title contains this"`
}

type windowsOut struct {
	Windows []desktop.Window `json:"windows"`
}

func (s *Server) registerScreenTools() {
	addTool(s, &mcp.Tool{
		Name:  "screenshot",
		Title: "Take a screenshot",
		Description: "Capture the screen of the sandbox as a PNG image. Click coordinates are pixels of the " +
			"full-size screen, whatever scale you ask for.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		between(p["scale"], 0.1, 1)
		r := p["region"]
		atLeast(r.Properties["x"], 0)
		atLeast(r.Properties["y"], 0)
		atLeast(r.Properties["width"], 1)
		atLeast(r.Properties["height"], 1)
	}, s.screenshot)

	addTool(s, &mcp.Tool{
		Name:        "cursor_position",
		Title:       "Where the mouse is",
		Description: "Return the mouse pointer's position in screen pixels.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, nil, s.cursorPosition)

	addTool(s, &mcp.Tool{
		Name:        "list_windows",
		Title:       "List windows",
		Description: "List the application windows on the desktop: id, title, class, position, size and which has the focus.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: new(false)},
	}, defaultCallLimit, nil, s.listWindows)
}

func (s *Server) screenshot(ctx context.Context, req *mcp.CallToolRequest, in screenshotIn) (*mcp.CallToolResult, screenshotOut, error) {
	if in.Scale != 0 && (in.Scale < 0.1 || in.Scale > 1) {
		return nil, screenshotOut{}, invalid("scale", "scale must be 0.1 to 1, got %g", in.Scale)
	}
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, screenshotOut{}, err
	}
	o := desktop.ScreenshotOptions{Cursor: in.Cursor}
	if r := in.Region; r != nil {
		o.Region = &desktop.Rect{X: r.X, Y: r.Y, Width: r.Width, Height: r.Height}
	}
	if in.Scale != 0 && in.Scale != 1 {
		w, err := sourceWidth(ctx, sb, o.Region)
		if err != nil {
			return nil, screenshotOut{}, err
		}
		o.Width = max(1, int(math.Round(float64(w)*in.Scale)))
	}
	img, err := sb.ScreenshotWith(ctx, o)
	if err != nil {
		return nil, screenshotOut{}, err
	}
	out := screenshotOut{Width: img.Width, Height: img.Height}
	return &mcp.CallToolResult{Content: []mcp.Content{
		pngContent(img.Data),
		&mcp.TextContent{Text: fmt.Sprintf("%dx%d PNG screenshot", img.Width, img.Height)},
	}}, out, nil
}

// sourceWidth is the width of what a screenshot captures.
func sourceWidth(ctx context.Context, sb *client.Sandbox, r *desktop.Rect) (int, error) {
	if r != nil {
		return r.Width, nil
	}
	size, err := sb.GetScreenSize(ctx)
	if err != nil {
		return 0, err
	}
	return size.Width, nil
}

func (s *Server) cursorPosition(ctx context.Context, req *mcp.CallToolRequest, in target) (*mcp.CallToolResult, desktop.Point, error) {
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, desktop.Point{}, err
	}
	p, err := sb.GetCursorPosition(ctx)
	if err != nil {
		return nil, desktop.Point{}, err
	}
	res, err := textResult(p)
	return res, p, err
}

func (s *Server) listWindows(ctx context.Context, req *mcp.CallToolRequest, in windowsIn) (*mcp.CallToolResult, windowsOut, error) {
	sb, err := s.sandbox(ctx, req, in.SandboxID)
	if err != nil {
		return nil, windowsOut{}, err
	}
	ws, err := sb.FindWindows(ctx, client.WindowFilter{Class: in.Class, Title: in.Title})
	if err != nil {
		return nil, windowsOut{}, err
	}
	out := windowsOut{Windows: ws}
	res, err := textResult(out)
	return res, out, err
}
