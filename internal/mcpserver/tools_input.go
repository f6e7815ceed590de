package mcpserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/desktop"
)

// point is a position in an input schema.
type point struct {
	X int `json:"x" jsonschema:"pixels from the left edge of the full-size screen"`
	Y int `json:"y" jsonschema:"pixels from the top edge of the full-size screen"`
}

type clickIn struct {
	target
	X        *int     `json:"x,omitempty" jsonschema:"where to click, in pixels from the left edge of the full-size screen; with y, or neither to click where the pointer is"`
	Y        *int     `json:"y,omitempty" jsonschema:"where to click, in pixels from the top edge of the full-size screen"`
	Button   string   `json:"button,omitempty" jsonschema:"mouse button; default left"`
	Clicks   int      `json:"clicks,omitempty" jsonschema:"1 (default), 2 for a double click, 3 for a triple click (selects a line)"`
	HoldKeys []string `json:"hold_keys,omitempty" jsonschema:"keys held down during the click, e.g. [\"ctrl\"] or [\"shift\"]"`
	settleIn
}

type typeIn struct {
	target
	Text  string `json:"text" jsonschema:"the text to type, as key strokes into the focused window; newlines press Return"`
	Paste bool   `json:"paste,omitempty" jsonschema:"put the text on the clipboard and press ctrl+v instead of typing it (faster for long text)"`
	settleIn
}

type keyIn struct {
	target
	Keys string `json:"keys" jsonschema:"a key or a combination joined with +: \"Return\", \"ctrl+l\", \"ctrl+shift+t\", \"alt+F4\", \"Page_Down\". Names are X keysyms or common aliases (enter, esc, ctrl, alt, shift, super, tab, up, pagedown)"`
	settleIn
}

type scrollIn struct {
	target
	Direction string   `json:"direction" jsonschema:"which way to scroll"`
	Amount    int      `json:"amount,omitempty" jsonschema:"how many wheel clicks; default 3"`
	X         *int     `json:"x,omitempty" jsonschema:"scroll with the pointer here (pixels from the left); with y, or neither for where it is"`
	Y         *int     `json:"y,omitempty" jsonschema:"scroll with the pointer here (pixels from the top)"`
	HoldKeys  []string `json:"hold_keys,omitempty" jsonschema:"keys held down while scrolling, e.g. [\"ctrl\"] to zoom"`
	settleIn
}

type dragIn struct {
	target
	From     *point   `json:"from,omitempty" jsonschema:"where the drag starts; give from and to, or path"`
	To       *point   `json:"to,omitempty" jsonschema:"where the drag ends"`
	Path     []point  `json:"path,omitempty" jsonschema:"the points the pointer moves through with the button down, first to last (at least two)"`
	Button   string   `json:"button,omitempty" jsonschema:"mouse button held during the drag; default left"`
	HoldKeys []string `json:"hold_keys,omitempty" jsonschema:"keys held down during the drag"`
	settleIn
}

type moveIn struct {
	target
	X int `json:"x" jsonschema:"pixels from the left edge of the full-size screen"`
	Y int `json:"y" jsonschema:"pixels from the top edge of the full-size screen"`
	settleIn
}

// buttons are the mouse buttons a tool takes.
var buttons = []string{"left", "right", "middle", "back", "forward"}

func (s *Server) registerInputTools() {
	act := &mcp.ToolAnnotations{OpenWorldHint: new(false)}
	pos := func(p map[string]*jsonschema.Schema) {
		atLeast(p["x"], 0)
		atLeast(p["y"], 0)
		refineSettle(p)
	}
	addTool(s, &mcp.Tool{
		Name:        "click",
		Title:       "Click",
		Description: "Move the mouse to (x, y) and click." + settleDoc,
		Annotations: act,
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		pos(p)
		enum(p["button"], buttons...)
		between(p["clicks"], 1, 3)
	}, s.click)

	addTool(s, &mcp.Tool{
		Name:        "type",
		Title:       "Type text",
		Description: "Type text into the focused window, as a keyboard would." + settleDoc,
		Annotations: act,
	}, defaultCallLimit, refineSettle, s.typeText)

	addTool(s, &mcp.Tool{
		Name:        "key",
		Title:       "Press keys",
		Description: "Press a key or a key combination (pressed together, released in reverse)." + settleDoc,
		Annotations: act,
	}, defaultCallLimit, refineSettle, s.key)

	addTool(s, &mcp.Tool{
		Name:        "scroll",
		Title:       "Scroll",
		Description: "Turn the mouse wheel, at (x, y) or where the pointer is." + settleDoc,
		Annotations: act,
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		pos(p)
		enum(p["direction"], "up", "down", "left", "right")
		between(p["amount"], 1, desktop.MaxScroll)
	}, s.scroll)

	addTool(s, &mcp.Tool{
		Name:        "drag",
		Title:       "Drag",
		Description: "Press a mouse button at one point, move through the path with it down and release it at the end." + settleDoc,
		Annotations: act,
	}, defaultCallLimit, func(p map[string]*jsonschema.Schema) {
		refineSettle(p)
		enum(p["button"], buttons...)
		for _, q := range []*jsonschema.Schema{p["from"], p["to"], p["path"].Items} {
			atLeast(q.Properties["x"], 0)
			atLeast(q.Properties["y"], 0)
		}
	}, s.drag)

	addTool(s, &mcp.Tool{
		Name:        "move_mouse",
		Title:       "Move the mouse",
		Description: "Move the mouse pointer to (x, y) without clicking (to hover)." + settleDoc,
		Annotations: act,
	}, defaultCallLimit, pos, s.moveMouse)
}

// at places a on (x, y) when both are given.
func at(a desktop.Action, x, y *int) (desktop.Action, error) {
	if (x == nil) != (y == nil) {
		return a, invalid("x", "give both x and y, or neither to act where the pointer is")
	}
	if x != nil {
		return a.At(*x, *y), nil
	}
	return a, nil
}

func (s *Server) click(ctx context.Context, req *mcp.CallToolRequest, in clickIn) (*mcp.CallToolResult, actionOut, error) {
	a, err := at(desktop.Action{Type: desktop.Click, Button: desktop.Button(in.Button), Count: in.Clicks, Modifiers: in.HoldKeys}, in.X, in.Y)
	if err != nil {
		return nil, actionOut{}, err
	}
	if in.Clicks < 0 || in.Clicks > 3 {
		return nil, actionOut{}, invalid("clicks", "clicks must be 1, 2 or 3, got %d", in.Clicks)
	}
	return s.act(ctx, req, in.SandboxID, in.settleIn, a)
}

func (s *Server) typeText(ctx context.Context, req *mcp.CallToolRequest, in typeIn) (*mcp.CallToolResult, actionOut, error) {
	if in.Text == "" {
		return nil, actionOut{}, invalid("text", "text is empty")
	}
	return s.act(ctx, req, in.SandboxID, in.settleIn, desktop.Action{Type: desktop.Type, Text: in.Text, Paste: in.Paste})
}

func (s *Server) key(ctx context.Context, req *mcp.CallToolRequest, in keyIn) (*mcp.CallToolResult, actionOut, error) {
	k := strings.TrimSpace(in.Keys)
	if k == "" {
		return nil, actionOut{}, invalid("keys", "keys is empty; give a key such as \"Return\" or a combination such as \"ctrl+l\"")
	}
	keys := []string{k}
	if len(k) > 1 && strings.Contains(k, "+") {
		keys = desktop.ParseCombo(k)
	}
	return s.act(ctx, req, in.SandboxID, in.settleIn, desktop.Action{Type: desktop.Key, Keys: keys})
}

func (s *Server) scroll(ctx context.Context, req *mcp.CallToolRequest, in scrollIn) (*mcp.CallToolResult, actionOut, error) {
	n := in.Amount
	if n == 0 {
		n = 3
	}
	if n < 0 || n > desktop.MaxScroll {
		return nil, actionOut{}, invalid("amount", "amount must be 1 to %d wheel clicks, got %d", desktop.MaxScroll, in.Amount)
	}
	a := desktop.Action{Type: desktop.Scroll, Modifiers: in.HoldKeys}
	switch in.Direction {
	case "down":
		a.DY = n
	case "up":
		a.DY = -n
	case "right":
		a.DX = n
	case "left":
		a.DX = -n
	default:
		return nil, actionOut{}, invalid("direction", "direction must be up, down, left or right, got %q", in.Direction)
	}
	a, err := at(a, in.X, in.Y)
	if err != nil {
		return nil, actionOut{}, err
	}
	return s.act(ctx, req, in.SandboxID, in.settleIn, a)
}

func (s *Server) drag(ctx context.Context, req *mcp.CallToolRequest, in dragIn) (*mcp.CallToolResult, actionOut, error) {
	var path []desktop.Point
	switch {
	case len(in.Path) > 0 && (in.From != nil || in.To != nil):
		return nil, actionOut{}, invalid("path", "give either path or from and to, not both")
	case len(in.Path) > 0:
		for _, p := range in.Path {
			path = append(path, desktop.Point{X: p.X, Y: p.Y})
		}
	case in.From != nil && in.To != nil:
		path = []desktop.Point{{X: in.From.X, Y: in.From.Y}, {X: in.To.X, Y: in.To.Y}}
	default:
		return nil, actionOut{}, invalid("path", "drag needs from and to, or a path of at least two points")
	}
	if len(path) < 2 {
		return nil, actionOut{}, invalid("path", "a drag path needs at least two points, got %d", len(path))
	}
	a := desktop.Action{Type: desktop.Drag, Path: path, Button: desktop.Button(in.Button), Modifiers: in.HoldKeys}
	return s.act(ctx, req, in.SandboxID, in.settleIn, a)
}

func (s *Server) moveMouse(ctx context.Context, req *mcp.CallToolRequest, in moveIn) (*mcp.CallToolResult, actionOut, error) {
	return s.act(ctx, req, in.SandboxID, in.settleIn, desktop.Action{Type: desktop.Move}.At(in.X, in.Y))
}

// describeAction says in a few words what a did, for the model.
func describeAction(a desktop.Action) string {
	where := ""
	if p, ok := a.Pos(); ok {
		where = fmt.Sprintf(" at (%d, %d)", p.X, p.Y)
	}
	switch a.Type {
	case desktop.Click:
		n := map[int]string{0: "clicked", 1: "clicked", 2: "double-clicked", 3: "triple-clicked"}[a.Count]
		b := string(a.Button)
		if b == "" {
			b = "left"
		}
		return fmt.Sprintf("%s %s%s", n, b, where)
	case desktop.Type:
		return fmt.Sprintf("typed %d characters", len([]rune(a.Text)))
	case desktop.Key:
		return "pressed " + strings.Join(a.Keys, "+")
	case desktop.Scroll:
		return fmt.Sprintf("scrolled dx=%d dy=%d%s", a.DX, a.DY, where)
	case desktop.Drag:
		first, last := a.Path[0], a.Path[len(a.Path)-1]
		return fmt.Sprintf("dragged from (%d, %d) to (%d, %d)", first.X, first.Y, last.X, last.Y)
	case desktop.Move:
		return "moved the pointer" + where
	case desktop.Launch:
		if a.App != "" {
			return "launched " + a.App
		}
		return "launched " + strings.Join(a.Command, " ")
	case desktop.Open:
		return "opened " + a.Target
	}
	return string(a.Type)
}
