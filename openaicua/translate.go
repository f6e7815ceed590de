package openaicua

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cubicle-dev/cubicle/cua"
	"github.com/cubicle-dev/cubicle/desktop"
)

// actionParams lists the fields of each action besides "type".
var actionParams = map[string][]string{
	"click":        {"button", "x", "y", "keys"},
	"double_click": {"x", "y", "keys"},
	"drag":         {"path", "keys"},
	"keypress":     {"keys"},
	"move":         {"x", "y", "keys"},
	"screenshot":   {},
	"scroll":       {"x", "y", "scroll_x", "scroll_y", "keys"},
	"type":         {"text"},
	"wait":         {},
}

func actionList() string {
	var names []string
	for n := range actionParams {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// buttons maps OpenAI's button names.
var buttons = map[string]desktop.Button{
	"left": "", "right": desktop.Right, "wheel": desktop.Middle, "middle": desktop.Middle,
	"back": desktop.Back, "forward": desktop.Forward,
}

// translate turns the actions of a call into steps, one per action, each
// checked against the screen.
func (t *Tool) translate(c Call) ([]cua.Step, error) {
	raws := c.Actions
	if len(raws) == 0 {
		if len(c.Action) == 0 {
			return nil, cua.Invalid("actions", "computer_call has neither action nor actions")
		}
		raws = append(raws, c.Action)
	}
	lim := desktop.Limits{Screen: t.scale.Screen}
	steps := make([]cua.Step, len(raws))
	for i, raw := range raws {
		st, err := t.action(raw)
		if err == nil {
			for j := range st.Actions {
				if err = st.Actions[j].Validate(lim); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", actionName(c, i), err)
		}
		steps[i] = st
	}
	return steps, nil
}

// action translates one action object.
func (t *Tool) action(raw []byte) (cua.Step, error) {
	a, err := cua.ParseArgs(raw, "the action")
	if err != nil {
		return cua.Step{}, err
	}
	typ, _, err := a.String("type", true, "one of "+actionList())
	if err != nil {
		return cua.Step{}, err
	}
	allowed, ok := actionParams[typ]
	if !ok {
		e := desktop.Errorf(desktop.CodeUnknownAction, "unknown action type %q; use one of %s", typ, actionList())
		e.Field = "type"
		return cua.Step{}, e
	}
	a = a.Named(typ)
	if err := a.Only(append([]string{"type"}, allowed...)...); err != nil {
		return cua.Step{}, err
	}
	var keys []string
	if slices.Contains(allowed, "keys") {
		names, _, err := a.Strings("keys", typ == "keypress", "key names such as CTRL and C")
		if err != nil {
			return cua.Step{}, err
		}
		if typ == "keypress" && len(names) == 0 {
			return cua.Step{}, cua.Invalid("keys", "keypress needs at least one key")
		}
		if keys, err = cua.OpenAIKeys(names, "keys"); err != nil {
			return cua.Step{}, err
		}
	}
	switch typ {
	case "screenshot":
		return cua.Step{}, nil
	case "wait":
		return one(desktop.Action{Type: desktop.Wait, DurationMS: int(t.cfg.Wait.Milliseconds())}), nil
	case "type":
		text, _, err := a.String("text", true, "the text to type")
		if err != nil {
			return cua.Step{}, err
		}
		if text == "" {
			return cua.Step{}, cua.Invalid("text", "type needs a non-empty text")
		}
		return one(desktop.Action{Type: desktop.Type, Text: text}), nil
	case "keypress":
		return one(desktop.Action{Type: desktop.Key, Keys: keys}), nil
	case "click", "double_click":
		p, err := t.xy(a)
		if err != nil {
			return cua.Step{}, err
		}
		act := desktop.Action{Type: desktop.Click, Modifiers: keys}.At(p.X, p.Y)
		if typ == "double_click" {
			act.Count = 2
			return one(act), nil
		}
		name, _, err := a.String("button", true, "left, right, wheel, back or forward")
		if err != nil {
			return cua.Step{}, err
		}
		b, ok := buttons[name]
		if !ok {
			e := desktop.Errorf(desktop.CodeUnknownButton, "unknown button %q; use left, right, wheel, back or forward", name)
			e.Field = "button"
			return cua.Step{}, e
		}
		act.Button = b
		return one(act), nil
	case "move":
		p, err := t.xy(a)
		if err != nil {
			return cua.Step{}, err
		}
		move := desktop.Action{Type: desktop.Move}.At(p.X, p.Y)
		if len(keys) == 0 {
			return one(move), nil
		}
		return cua.Step{Actions: []desktop.Action{
			{Type: desktop.KeyDown, Keys: keys}, move, {Type: desktop.KeyUp, Keys: keys},
		}}, nil
	case "drag":
		pts, err := a.Path("path", `a list of {"x": ..., "y": ...} points`)
		if err != nil {
			return cua.Step{}, err
		}
		if len(pts) < 2 {
			return cua.Step{}, cua.Invalid("path", "drag needs a path of at least two points, got %d", len(pts))
		}
		path := make([]desktop.Point, len(pts))
		for i, v := range pts {
			if path[i], err = t.scale.Point(v[0], v[1], fmt.Sprintf("path[%d]", i)); err != nil {
				return cua.Step{}, err
			}
		}
		return one(desktop.Action{Type: desktop.Drag, Path: path, Modifiers: keys}), nil
	case "scroll":
		return t.scroll(a, keys)
	}
	return cua.Step{}, desktop.Errorf(desktop.CodeUnknownAction, "unknown action type %q", typ)
}

func one(a desktop.Action) cua.Step {
	return cua.Step{Actions: []desktop.Action{a}}
}

// xy reads x and y on the display and maps them to the screen.
func (t *Tool) xy(a *cua.Args) (desktop.Point, error) {
	x, _, err := a.Number("x", true, "pixels from the left of the screenshot")
	if err != nil {
		return desktop.Point{}, err
	}
	y, _, err := a.Number("y", true, "pixels from the top of the screenshot")
	if err != nil {
		return desktop.Point{}, err
	}
	return t.scale.Point(x, y, "x, y")
}

// scroll turns pixels on the display into wheel clicks at x, y.
func (t *Tool) scroll(a *cua.Args, keys []string) (cua.Step, error) {
	p, err := t.xy(a)
	if err != nil {
		return cua.Step{}, err
	}
	sx, _, err := a.Number("scroll_x", true, "pixels to scroll right (negative: left)")
	if err != nil {
		return cua.Step{}, err
	}
	sy, _, err := a.Number("scroll_y", true, "pixels to scroll down (negative: up)")
	if err != nil {
		return cua.Step{}, err
	}
	fx := float64(t.scale.Screen.Width) / float64(t.scale.Display.Width)
	fy := float64(t.scale.Screen.Height) / float64(t.scale.Display.Height)
	act := desktop.Action{Type: desktop.Scroll, Modifiers: keys,
		DX: t.clicks(sx * fx), DY: t.clicks(sy * fy)}.At(p.X, p.Y)
	if act.DX == 0 && act.DY == 0 {
		return cua.Step{Actions: []desktop.Action{desktop.Action{Type: desktop.Move}.At(p.X, p.Y)}}, nil
	}
	return one(act), nil
}

// clicks converts screen pixels to wheel clicks: at least one for any
// movement, at most desktop.MaxScroll.
func (t *Tool) clicks(px float64) int {
	if px == 0 || math.IsNaN(px) {
		return 0
	}
	n := max(1, int(math.Round(math.Abs(px)/float64(t.cfg.ScrollPixelsPerClick))))
	n = min(n, desktop.MaxScroll)
	if px < 0 {
		return -n
	}
	return n
}
