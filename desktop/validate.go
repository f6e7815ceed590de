package desktop

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits bound what an action may ask for.
type Limits struct {
	// Screen is the size of the screen; coordinates must fall inside it.
	// A zero size skips the bounds checks.
	Screen Size
	// MaxText is the longest text, in characters, that one action may type
	// or put on the clipboard. Zero means DefaultMaxText.
	MaxText int
	// MaxActions is the most actions one batch may hold. Zero means
	// DefaultMaxActions.
	MaxActions int
}

// Defaults for Limits.
const (
	DefaultMaxText    = 100_000
	DefaultMaxActions = 1_000
	MaxDurationMS     = 60_000 // wait, hold_key, settle timeout
	MaxClicks         = 10
	MaxScroll         = 200 // clicks in one direction per scroll action
	MaxPathPoints     = 10_000
	MaxArgs           = 256
)

func (l Limits) maxText() int {
	if l.MaxText > 0 {
		return l.MaxText
	}
	return DefaultMaxText
}

func (l Limits) maxActions() int {
	if l.MaxActions > 0 {
		return l.MaxActions
	}
	return DefaultMaxActions
}

// field names an argument of Action, for the "does not belong" check.
type field struct {
	name string
	set  func(a *Action) bool
}

var fields = []field{
	{"x", func(a *Action) bool { return a.X != nil }},
	{"y", func(a *Action) bool { return a.Y != nil }},
	{"button", func(a *Action) bool { return a.Button != "" }},
	{"count", func(a *Action) bool { return a.Count != 0 }},
	{"modifiers", func(a *Action) bool { return len(a.Modifiers) > 0 }},
	{"keys", func(a *Action) bool { return len(a.Keys) > 0 }},
	{"text", func(a *Action) bool { return a.Text != "" }},
	{"paste", func(a *Action) bool { return a.Paste }},
	{"paste_keys", func(a *Action) bool { return len(a.PasteKeys) > 0 }},
	{"dx", func(a *Action) bool { return a.DX != 0 }},
	{"dy", func(a *Action) bool { return a.DY != 0 }},
	{"path", func(a *Action) bool { return len(a.Path) > 0 }},
	{"duration_ms", func(a *Action) bool { return a.DurationMS != 0 }},
	{"app", func(a *Action) bool { return a.App != "" }},
	{"command", func(a *Action) bool { return len(a.Command) > 0 }},
	{"uri", func(a *Action) bool { return a.URI != "" }},
	{"target", func(a *Action) bool { return a.Target != "" }},
	{"window", func(a *Action) bool { return a.Window != 0 }},
}

// allowed lists the arguments each type takes; settle is allowed on all.
var allowed = map[ActionType]string{
	Move:         "x y",
	Click:        "x y button count modifiers",
	MouseDown:    "x y button",
	MouseUp:      "x y button",
	Scroll:       "x y dx dy modifiers",
	Drag:         "path button modifiers",
	Key:          "keys",
	KeyDown:      "keys",
	KeyUp:        "keys",
	HoldKey:      "keys duration_ms",
	Type:         "text paste paste_keys",
	Wait:         "duration_ms",
	Launch:       "app command uri",
	Open:         "target",
	FocusWindow:  "window",
	SetClipboard: "text",
}

func invalid(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...), Index: -1}
}

// Validate checks a against l. It returns nil or an *Error whose Code says
// what kind of problem it is and whose Message says how to fix it.
func (a *Action) Validate(l Limits) error {
	args, ok := allowed[a.Type]
	if !ok {
		if a.Type == "" {
			return invalid(CodeUnknownAction, "type", "action has no type; use one of %s", typeList())
		}
		return invalid(CodeUnknownAction, "type", "unknown action type %q; use one of %s", a.Type, typeList())
	}
	for _, f := range fields {
		if f.set(a) && !hasWord(args, f.name) {
			return invalid(CodeInvalid, f.name, "%s does not take %q (it takes: %s)", a.Type, f.name, args)
		}
	}
	if (a.X == nil) != (a.Y == nil) {
		return invalid(CodeInvalid, "x", "%s needs both x and y, or neither", a.Type)
	}
	if p, ok := a.Pos(); ok {
		if err := l.checkPoint(p, "x"); err != nil {
			return err
		}
	}
	if hasWord(args, "button") && a.Button.X11Button() == 0 {
		return invalid(CodeUnknownButton, "button", "unknown button %q; use left, right, middle, back or forward", a.Button)
	}
	if err := checkKeys(a.Modifiers, "modifiers"); err != nil {
		return err
	}
	if err := a.Settle.validate(); err != nil {
		return err
	}

	switch a.Type {
	case Click:
		if a.Count < 0 || a.Count > MaxClicks {
			return invalid(CodeInvalid, "count", "count must be 1 to %d, got %d", MaxClicks, a.Count)
		}
	case Scroll:
		if a.DX == 0 && a.DY == 0 {
			return invalid(CodeInvalid, "dy", "scroll needs dy (down, negative up) or dx (right, negative left)")
		}
		if abs(a.DX) > MaxScroll || abs(a.DY) > MaxScroll {
			return invalid(CodeInvalid, "dy", "scroll by at most %d clicks per action, got dx=%d dy=%d", MaxScroll, a.DX, a.DY)
		}
	case Drag:
		if len(a.Path) < 2 {
			return invalid(CodeInvalid, "path", "drag needs a path of at least two points, got %d", len(a.Path))
		}
		if len(a.Path) > MaxPathPoints {
			return invalid(CodeInvalid, "path", "drag path has %d points; the limit is %d", len(a.Path), MaxPathPoints)
		}
		for i, p := range a.Path {
			if err := l.checkPoint(p, fmt.Sprintf("path[%d]", i)); err != nil {
				return err
			}
		}
	case Key, KeyDown, KeyUp, HoldKey:
		if len(a.Keys) == 0 {
			return invalid(CodeInvalid, "keys", "%s needs keys, e.g. [\"ctrl\", \"l\"]", a.Type)
		}
		if err := checkKeys(a.Keys, "keys"); err != nil {
			return err
		}
		if a.Type == HoldKey {
			if err := checkDuration(a.DurationMS, true); err != nil {
				return err
			}
		}
	case Type:
		if err := l.checkText(a.Text, true); err != nil {
			return err
		}
		if !a.Paste && len(a.PasteKeys) > 0 {
			return invalid(CodeInvalid, "paste_keys", "paste_keys needs paste: true")
		}
		if err := checkKeys(a.PasteKeys, "paste_keys"); err != nil {
			return err
		}
	case SetClipboard:
		if err := l.checkText(a.Text, false); err != nil {
			return err
		}
	case Wait:
		if err := checkDuration(a.DurationMS, false); err != nil {
			return err
		}
	case Launch:
		if (a.App == "") == (len(a.Command) == 0) {
			return invalid(CodeInvalid, "app", "launch needs either app (a .desktop name such as \"firefox-esr\") or command (an argv list)")
		}
		if a.App != "" && (strings.ContainsAny(a.App, "/\x00") || strings.HasPrefix(a.App, ".")) {
			return invalid(CodeInvalid, "app", "app must be a .desktop file name, not a path: %q", a.App)
		}
		if len(a.Command) > MaxArgs {
			return invalid(CodeInvalid, "command", "command has %d arguments; the limit is %d", len(a.Command), MaxArgs)
		}
		if len(a.Command) > 0 && a.Command[0] == "" {
			return invalid(CodeInvalid, "command", "command[0] must name a program")
		}
		for i, s := range append(append([]string{}, a.Command...), a.URI, a.App) {
			if strings.ContainsRune(s, 0) {
				return invalid(CodeInvalid, "command", "argument %d contains a NUL byte", i)
			}
		}
	case Open:
		if a.Target == "" {
			return invalid(CodeInvalid, "target", "open needs target: a file path or a URL")
		}
		if strings.ContainsRune(a.Target, 0) {
			return invalid(CodeInvalid, "target", "target contains a NUL byte")
		}
	case FocusWindow:
		if a.Window == 0 {
			return invalid(CodeInvalid, "window", "focus_window needs window: an id from the window list")
		}
	}
	return nil
}

// Validate checks every action of b and the batch options. The *Error it
// returns has Index set to the failing action.
func (b *Batch) Validate(l Limits) error {
	if len(b.Actions) == 0 && b.Screenshot == nil && b.Settle == nil {
		return invalid(CodeInvalid, "actions", "batch has no actions")
	}
	if len(b.Actions) > l.maxActions() {
		return invalid(CodeInvalid, "actions", "batch has %d actions; the limit is %d", len(b.Actions), l.maxActions())
	}
	text := 0
	for i := range b.Actions {
		if err := b.Actions[i].Validate(l); err != nil {
			e := err.(*Error)
			e.Index = i
			return e
		}
		text += utf8.RuneCountInString(b.Actions[i].Text)
	}
	if text > 4*l.maxText() {
		return invalid(CodeTextTooLong, "actions", "batch types %d characters in all; the limit is %d", text, 4*l.maxText())
	}
	if err := b.Settle.validate(); err != nil {
		return err
	}
	if b.Screenshot != nil {
		return b.Screenshot.Validate(l.Screen)
	}
	return nil
}

// Validate checks o against a screen of the given size (zero: unknown).
func (o *ScreenshotOptions) Validate(screen Size) error {
	switch o.Format {
	case "", "png", "jpeg":
	case "jpg":
		o.Format = "jpeg"
	default:
		return invalid(CodeInvalid, "format", "unknown format %q; use png or jpeg", o.Format)
	}
	if o.Quality < 0 || o.Quality > 100 {
		return invalid(CodeInvalid, "quality", "quality must be 1 to 100, got %d", o.Quality)
	}
	if o.Quality != 0 && o.Format != "jpeg" {
		return invalid(CodeInvalid, "quality", "quality applies to jpeg only")
	}
	if o.Width < 0 || o.Height < 0 || o.Width > 8192 || o.Height > 8192 {
		return invalid(CodeInvalid, "width", "width and height must be 1 to 8192, got %dx%d", o.Width, o.Height)
	}
	if r := o.Region; r != nil {
		if r.Width <= 0 || r.Height <= 0 || r.X < 0 || r.Y < 0 {
			return invalid(CodeOutOfBounds, "region", "region %dx%d+%d+%d must have a positive size and a position inside the screen", r.Width, r.Height, r.X, r.Y)
		}
		if screen.Width > 0 && (r.X+r.Width > screen.Width || r.Y+r.Height > screen.Height) {
			return invalid(CodeOutOfBounds, "region", "region %dx%d+%d+%d reaches outside the %dx%d screen", r.Width, r.Height, r.X, r.Y, screen.Width, screen.Height)
		}
	}
	return nil
}

func (s *Settle) validate() error {
	if s == nil {
		return nil
	}
	if s.QuietMS < 0 || s.QuietMS > MaxDurationMS || s.TimeoutMS < 0 || s.TimeoutMS > MaxDurationMS {
		return invalid(CodeInvalid, "settle", "settle quiet_ms and timeout_ms must be 0 to %d", MaxDurationMS)
	}
	return nil
}

// Durations returns the settle quiet period and deadline in milliseconds,
// with the defaults filled in.
func (s *Settle) Durations() (quietMS, timeoutMS int) {
	quietMS, timeoutMS = 100, 2000
	if s.QuietMS > 0 {
		quietMS = s.QuietMS
	}
	if s.TimeoutMS > 0 {
		timeoutMS = s.TimeoutMS
	}
	return quietMS, timeoutMS
}

func (l Limits) checkPoint(p Point, name string) error {
	if p.X < 0 || p.Y < 0 || (l.Screen.Width > 0 && (p.X >= l.Screen.Width || p.Y >= l.Screen.Height)) {
		if l.Screen.Width > 0 {
			return invalid(CodeOutOfBounds, name, "point (%d, %d) is outside the %dx%d screen; x must be 0 to %d and y 0 to %d",
				p.X, p.Y, l.Screen.Width, l.Screen.Height, l.Screen.Width-1, l.Screen.Height-1)
		}
		return invalid(CodeOutOfBounds, name, "point (%d, %d) has a negative coordinate", p.X, p.Y)
	}
	return nil
}

func (l Limits) checkText(s string, required bool) error {
	if required && s == "" {
		return invalid(CodeInvalid, "text", "text is empty")
	}
	if !utf8.ValidString(s) {
		return invalid(CodeInvalid, "text", "text is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > l.maxText() {
		return invalid(CodeTextTooLong, "text", "text has %d characters; the limit is %d (split it over several actions)", n, l.maxText())
	}
	if strings.ContainsRune(s, 0) {
		return invalid(CodeInvalid, "text", "text contains a NUL character")
	}
	return nil
}

func checkKeys(keys []string, name string) error {
	if len(keys) > 16 {
		return invalid(CodeInvalid, name, "%s has %d keys; press at most 16 together", name, len(keys))
	}
	for _, k := range keys {
		if _, ok := LookupKey(k); !ok {
			hint := ""
			if strings.Contains(k, "+") && len(k) > 1 {
				hint = fmt.Sprintf(" (write a combination as separate keys: %q)", ParseCombo(k))
			}
			return invalid(CodeUnknownKey, name, "unknown key %q%s; use an X keysym name (Return, Page_Down, F5) or an alias (enter, ctrl, cmd, esc, page_down)", k, hint)
		}
	}
	return nil
}

func checkDuration(ms int, required bool) error {
	lo := 0
	if required {
		lo = 1
	}
	if ms < lo || ms > MaxDurationMS {
		return invalid(CodeInvalid, "duration_ms", "duration_ms must be %d to %d, got %d", lo, MaxDurationMS, ms)
	}
	return nil
}

func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if f == w {
			return true
		}
	}
	return false
}

func typeList() string {
	s := make([]string, len(ActionTypes))
	for i, t := range ActionTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
