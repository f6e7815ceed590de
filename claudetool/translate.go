package claudetool

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cubicle-dev/cubicle/cua"
	"github.com/cubicle-dev/cubicle/desktop"
)

// spec says since which version an action exists and which parameters it
// takes there (besides "action").
type spec struct {
	since  Version
	params func(v Version) []string
}

func params(p ...string) func(Version) []string {
	return func(Version) []string { return p }
}

// clickParams: the first version clicks where the pointer is (a coordinate
// is accepted all the same); later ones take a coordinate and modifier keys
// in text.
func clickParams(v Version) []string {
	if v == Computer20241022 {
		return []string{"coordinate"}
	}
	return []string{"coordinate", "text"}
}

func dragParams(v Version) []string {
	if v == Computer20241022 {
		return []string{"coordinate"}
	}
	return []string{"start_coordinate", "coordinate"}
}

// actions are the computer tool's actions, as Anthropic documents them.
var actions = map[string]spec{
	"key":             {Computer20241022, params("text")},
	"type":            {Computer20241022, params("text")},
	"mouse_move":      {Computer20241022, params("coordinate")},
	"left_click":      {Computer20241022, clickParams},
	"left_click_drag": {Computer20241022, dragParams},
	"right_click":     {Computer20241022, clickParams},
	"middle_click":    {Computer20241022, clickParams},
	"double_click":    {Computer20241022, clickParams},
	"screenshot":      {Computer20241022, params()},
	"cursor_position": {Computer20241022, params()},
	"left_mouse_down": {Computer20250124, params("coordinate")},
	"left_mouse_up":   {Computer20250124, params("coordinate")},
	"scroll":          {Computer20250124, params("coordinate", "scroll_direction", "scroll_amount", "text")},
	"hold_key":        {Computer20250124, params("text", "duration")},
	"wait":            {Computer20250124, params("duration")},
	"triple_click":    {Computer20250124, clickParams},
	"zoom":            {Computer20251124, params("region")},
}

// actionNames lists the actions of version v.
func actionNames(v Version) string {
	var names []string
	for n, s := range actions {
		if s.since <= v {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// clicks maps the click actions to a button and a count.
var clicks = map[string]struct {
	button desktop.Button
	count  int
}{
	"left_click":   {desktop.Left, 0},
	"right_click":  {desktop.Right, 0},
	"middle_click": {desktop.Middle, 0},
	"double_click": {desktop.Left, 2},
	"triple_click": {desktop.Left, 3},
}

// call is one tool_use translated.
type call struct {
	action string
	step   cua.Step
	err    error
}

// translate turns one tool_use into desktop actions, checked against the
// screen, or an error that says what is wrong with it.
func (t *Tool) translate(u ToolUse) call {
	c := call{}
	c.step, c.action, c.err = t.translateStep(u)
	if c.err != nil {
		return c
	}
	lim := desktop.Limits{Screen: t.scale.Screen}
	for i := range c.step.Actions {
		if err := c.step.Actions[i].Validate(lim); err != nil {
			c.err = err
			return c
		}
	}
	return c
}

func (t *Tool) translateStep(u ToolUse) (cua.Step, string, error) {
	if u.Name != Name {
		return cua.Step{}, "", cua.Invalid("name", "tool %q is not the computer tool %q", u.Name, Name)
	}
	a, err := cua.ParseArgs(u.Input, "the computer tool")
	if err != nil {
		return cua.Step{}, "", err
	}
	action, _, err := a.String("action", true, "one of "+actionNames(t.version))
	if err != nil {
		return cua.Step{}, "", err
	}
	sp, ok := actions[action]
	if !ok || sp.since > t.version {
		e := desktop.Errorf(desktop.CodeUnknownAction, "unknown action %q for %s; use one of %s", action, t.version, actionNames(t.version))
		if ok {
			e.Message = fmt.Sprintf("action %q needs %s or later; %s has %s", action, sp.since, t.version, actionNames(t.version))
		}
		e.Field = "action"
		return cua.Step{}, action, e
	}
	a = a.Named(action)
	if err := a.Only(append([]string{"action"}, sp.params(t.version)...)...); err != nil {
		return cua.Step{}, action, err
	}
	st, err := t.step(action, a)
	return st, action, err
}

// step translates the arguments of an action that exists in the version.
func (t *Tool) step(action string, a *cua.Args) (cua.Step, error) {
	switch action {
	case "screenshot":
		return cua.Step{Image: t.scale.Screenshot(t.cfg.Format)}, nil
	case "cursor_position":
		return cua.Step{Actions: []desktop.Action{{Type: desktop.Move}}, Cursor: true}, nil
	case "zoom":
		if !t.cfg.EnableZoom {
			return cua.Step{}, cua.Invalid("action", "zoom is not enabled for this tool (enable_zoom is false)")
		}
		v, _, err := a.Numbers("region", 4, true, "[x0, y0, x1, y1]")
		if err != nil {
			return cua.Step{}, err
		}
		r, err := t.scale.Region(v, "region")
		if err != nil {
			return cua.Step{}, err
		}
		return cua.Step{Image: t.scale.Zoom(r, t.cfg.Format)}, nil
	case "key":
		text, _, err := a.String("text", true, `the key or combination, such as "Return" or "ctrl+s"`)
		if err != nil {
			return cua.Step{}, err
		}
		combos, err := cua.XdotoolKeys(text, "text")
		if err != nil {
			return cua.Step{}, err
		}
		var st cua.Step
		for _, k := range combos {
			st.Actions = append(st.Actions, desktop.Action{Type: desktop.Key, Keys: k})
		}
		return st, nil
	case "type":
		text, _, err := a.String("text", true, "the text to type")
		if err != nil {
			return cua.Step{}, err
		}
		if text == "" {
			return cua.Step{}, cua.Invalid("text", "type needs a non-empty text")
		}
		return one(desktop.Action{Type: desktop.Type, Text: text}), nil
	case "mouse_move":
		p, _, err := t.point(a, "coordinate", true)
		if err != nil {
			return cua.Step{}, err
		}
		return one(desktop.Action{Type: desktop.Move}.At(p.X, p.Y)), nil
	case "left_click", "right_click", "middle_click", "double_click", "triple_click":
		c := clicks[action]
		act := desktop.Action{Type: desktop.Click, Button: c.button, Count: c.count}
		if c.button == desktop.Left {
			act.Button = ""
		}
		mods, err := modifiers(a)
		if err != nil {
			return cua.Step{}, err
		}
		act.Modifiers = mods
		return t.at(a, act)
	case "left_mouse_down", "left_mouse_up":
		typ := desktop.MouseDown
		if action == "left_mouse_up" {
			typ = desktop.MouseUp
		}
		return t.at(a, desktop.Action{Type: typ})
	case "left_click_drag":
		return t.drag(a)
	case "scroll":
		return t.scroll(a)
	case "hold_key":
		text, _, err := a.String("text", true, `the key to hold, such as "shift"`)
		if err != nil {
			return cua.Step{}, err
		}
		keys, err := cua.Combo(text, "text")
		if err != nil {
			return cua.Step{}, err
		}
		ms, err := duration(a, true)
		if err != nil {
			return cua.Step{}, err
		}
		return one(desktop.Action{Type: desktop.HoldKey, Keys: keys, DurationMS: ms}), nil
	case "wait":
		ms, err := duration(a, false)
		if err != nil {
			return cua.Step{}, err
		}
		return one(desktop.Action{Type: desktop.Wait, DurationMS: ms}), nil
	}
	return cua.Step{}, desktop.Errorf(desktop.CodeUnknownAction, "unknown action %q", action)
}

func one(a desktop.Action) cua.Step {
	return cua.Step{Actions: []desktop.Action{a}}
}

// point reads a coordinate [x, y] on the display and maps it to the screen.
func (t *Tool) point(a *cua.Args, field string, required bool) (desktop.Point, bool, error) {
	v, ok, err := a.Numbers(field, 2, required, "[x, y] in pixels of the display")
	if err != nil || !ok {
		return desktop.Point{}, false, err
	}
	p, err := t.scale.Point(v[0], v[1], field)
	return p, err == nil, err
}

// at places act at the optional coordinate.
func (t *Tool) at(a *cua.Args, act desktop.Action) (cua.Step, error) {
	p, ok, err := t.point(a, "coordinate", false)
	if err != nil {
		return cua.Step{}, err
	}
	if ok {
		act = act.At(p.X, p.Y)
	}
	return one(act), nil
}

// drag is left_click_drag: from start_coordinate (or where the pointer is)
// to coordinate.
func (t *Tool) drag(a *cua.Args) (cua.Step, error) {
	to, _, err := t.point(a, "coordinate", true)
	if err != nil {
		return cua.Step{}, err
	}
	from, ok, err := t.point(a, "start_coordinate", false)
	if err != nil {
		return cua.Step{}, err
	}
	if ok {
		return one(desktop.Action{Type: desktop.Drag, Path: []desktop.Point{from, to}}), nil
	}
	return cua.Step{Actions: []desktop.Action{
		{Type: desktop.MouseDown},
		desktop.Action{Type: desktop.Move}.At(to.X, to.Y),
		{Type: desktop.MouseUp},
	}}, nil
}

func (t *Tool) scroll(a *cua.Args) (cua.Step, error) {
	dir, _, err := a.String("scroll_direction", true, "up, down, left or right")
	if err != nil {
		return cua.Step{}, err
	}
	n, _, err := a.Number("scroll_amount", true, "the number of wheel clicks")
	if err != nil {
		return cua.Step{}, err
	}
	amount := int(math.Round(n))
	if amount < 1 || amount > desktop.MaxScroll {
		return cua.Step{}, cua.Invalid("scroll_amount", "scroll_amount must be 1 to %d wheel clicks, got %g", desktop.MaxScroll, n)
	}
	act := desktop.Action{Type: desktop.Scroll}
	switch dir {
	case "up":
		act.DY = -amount
	case "down":
		act.DY = amount
	case "left":
		act.DX = -amount
	case "right":
		act.DX = amount
	default:
		return cua.Step{}, cua.Invalid("scroll_direction", "unknown scroll_direction %q; use up, down, left or right", dir)
	}
	mods, err := modifiers(a)
	if err != nil {
		return cua.Step{}, err
	}
	act.Modifiers = mods
	return t.at(a, act)
}

// modifiers reads the keys held during a click or scroll from text.
func modifiers(a *cua.Args) ([]string, error) {
	text, ok, err := a.String("text", false, `modifier keys to hold, such as "shift" or "ctrl+shift"`)
	if err != nil || !ok || strings.TrimSpace(text) == "" {
		return nil, err
	}
	return cua.Combo(text, "text")
}

// duration reads duration (seconds) as milliseconds.
func duration(a *cua.Args, positive bool) (int, error) {
	s, _, err := a.Number("duration", true, "seconds")
	if err != nil {
		return 0, err
	}
	return cua.Seconds(s, "duration", positive)
}

// message is the text of an error for a model.
func message(err error) string {
	var de *desktop.Error
	if errors.As(err, &de) {
		return de.Message
	}
	return err.Error()
}
