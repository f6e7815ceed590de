package cua

import (
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// openAIKeys are OpenAI's key names whose meaning on a Linux desktop
// differs from desktop's aliases: the Mac command and meta keys are the
// Super key here.
var openAIKeys = map[string]string{
	"meta":   "Super_L",
	"cmd":    "Super_L",
	"option": "Alt_L",
}

// Key resolves one key name to its canonical X keysym name, or returns an
// unknown_key error about field that says which names work.
func Key(name, field, hint string) (string, error) {
	ks, ok := desktop.LookupKey(name)
	if !ok {
		e := desktop.Errorf(desktop.CodeUnknownKey, "unknown key %q in %s; %s", name, field, hint)
		e.Field = field
		return "", e
	}
	if n := desktop.KeyName(ks); n != "" {
		return n, nil
	}
	return name, nil
}

// xdotoolHint tells a model which key names work.
const xdotoolHint = "use xdotool key names such as Return, Escape, BackSpace, Tab, Page_Down, F5, KP_0, ctrl, alt, shift, super, and combinations such as ctrl+s or alt+Tab"

// XdotoolKeys reads xdotool key syntax, as Anthropic's computer tool sends
// it: combinations separated by spaces ("ctrl+a BackSpace"), the keys of
// one combination joined by "+" ("ctrl+shift+t").
func XdotoolKeys(s, field string) ([][]string, error) {
	var out [][]string
	for _, f := range strings.Fields(s) {
		combo, err := Combo(f, field)
		if err != nil {
			return nil, err
		}
		out = append(out, combo)
	}
	if len(out) == 0 {
		return nil, Invalid(field, "%s names no key; %s", field, xdotoolHint)
	}
	return out, nil
}

// Combo reads one key combination written with "+" ("ctrl+shift").
func Combo(s, field string) ([]string, error) {
	parts := desktop.ParseCombo(strings.TrimSpace(s))
	if len(parts) == 0 {
		return nil, Invalid(field, "%s names no key; %s", field, xdotoolHint)
	}
	keys := make([]string, len(parts))
	for i, p := range parts {
		k, err := Key(p, field, xdotoolHint)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

// openAIHint tells which of OpenAI's key names work.
const openAIHint = "use key names such as ENTER, ESC, TAB, BACKSPACE, SPACE, CTRL, ALT, SHIFT, CMD, ARROWLEFT, PAGEDOWN, F5 or a single character"

// OpenAIKeys maps OpenAI's key names ("CTRL", "ENTER", "ARROWLEFT", "a")
// to canonical X keysym names.
func OpenAIKeys(names []string, field string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		if alias, ok := openAIKeys[strings.ToLower(n)]; ok {
			n = alias
		}
		k, err := Key(n, field, openAIHint)
		if err != nil {
			return nil, err
		}
		out[i] = k
	}
	return out, nil
}
