package desktop

import (
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Keysym is an X11 keysym value.
type Keysym uint32

// keyAliases are the key names people and SDKs use that are not X keysym
// names: E2B's desktop SDK names, xdotool's, and those of the browser
// KeyboardEvent.key values that the model vendors send. Keys are lower case.
var keyAliases = map[string]string{
	"alt": "Alt_L", "alt_l": "Alt_L", "alt_left": "Alt_L", "alt_r": "Alt_R", "alt_right": "Alt_R",
	"option": "Alt_L", "altgr": "ISO_Level3_Shift",
	"ctrl": "Control_L", "control": "Control_L", "ctrl_l": "Control_L", "ctrl_left": "Control_L",
	"control_left": "Control_L", "ctrl_r": "Control_R", "ctrl_right": "Control_R", "control_right": "Control_R",
	"shift": "Shift_L", "shift_left": "Shift_L", "shift_right": "Shift_R",
	"cmd": "Super_L", "command": "Super_L", "win": "Super_L", "windows": "Super_L", "super": "Super_L",
	"meta": "Meta_L", "os": "Super_L",
	"enter": "Return", "return": "Return", "esc": "Escape", "escape": "Escape",
	"backspace": "BackSpace", "back_space": "BackSpace", "del": "Delete", "delete": "Delete",
	"ins": "Insert", "insert": "Insert", "tab": "Tab", "space": "space", "spacebar": "space",
	"up": "Up", "down": "Down", "left": "Left", "right": "Right",
	"arrowup": "Up", "arrowdown": "Down", "arrowleft": "Left", "arrowright": "Right",
	"arrow_up": "Up", "arrow_down": "Down", "arrow_left": "Left", "arrow_right": "Right",
	"home": "Home", "end": "End",
	"pageup": "Page_Up", "page_up": "Page_Up", "pgup": "Page_Up", "prior": "Prior",
	"pagedown": "Page_Down", "page_down": "Page_Down", "pgdn": "Page_Down", "next": "Next",
	"capslock": "Caps_Lock", "caps_lock": "Caps_Lock", "numlock": "Num_Lock", "num_lock": "Num_Lock",
	"scrolllock": "Scroll_Lock", "scroll_lock": "Scroll_Lock",
	"print": "Print", "printscreen": "Print", "print_screen": "Print", "prtsc": "Print",
	"pause": "Pause", "break": "Pause", "menu": "Menu", "contextmenu": "Menu", "apps": "Menu",
	"plus": "plus", "minus": "minus", "comma": "comma", "period": "period", "slash": "slash",
	"backslash": "backslash", "semicolon": "semicolon", "equal": "equal", "equals": "equal",
	"quote": "apostrophe", "apostrophe": "apostrophe", "backquote": "grave", "backtick": "grave",
	"grave": "grave", "tilde": "asciitilde", "bracketleft": "bracketleft", "bracketright": "bracketright",
	"volumeup": "XF86AudioRaiseVolume", "volume_up": "XF86AudioRaiseVolume",
	"volumedown": "XF86AudioLowerVolume", "volume_down": "XF86AudioLowerVolume",
	"volumemute": "XF86AudioMute", "volume_mute": "XF86AudioMute", "mute": "XF86AudioMute",
}

var lowerNames = sync.OnceValue(func() map[string]string {
	m := make(map[string]string, len(keysymNames))
	names := make([]string, 0, len(keysymNames))
	for n := range keysymNames {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := strings.ToLower(n)
		// On a clash ("Agrave" and "agrave") the all-lower-case name wins.
		if prev, ok := m[l]; !ok || (prev != l && n == l) {
			m[l] = n
		}
	}
	return m
})

// LookupKey resolves a key name to a keysym. It accepts, in this order: an X
// keysym name ("Return", "Page_Down", "XF86AudioMute"), an alias ("enter",
// "ctrl", "cmd", "ArrowLeft", "page_down"; case does not matter), an X keysym
// name in another case ("RETURN", "f5"), and a single character ("a", "é",
// "€"), which stands for the key that types it.
func LookupKey(name string) (Keysym, bool) {
	if name == "" {
		return 0, false
	}
	if ks, ok := keysymNames[name]; ok {
		return ks, true
	}
	if utf8.RuneCountInString(name) == 1 {
		r, _ := utf8.DecodeRuneInString(name)
		if r == utf8.RuneError || unicode.IsControl(r) {
			return 0, false
		}
		return RuneKeysym(r), true
	}
	l := strings.ToLower(name)
	if alias, ok := keyAliases[l]; ok {
		return keysymNames[alias], true
	}
	if n, ok := lowerNames()[l]; ok {
		return keysymNames[n], true
	}
	return 0, false
}

// KeyName returns the canonical X name of a keysym, or "" when it has none.
func KeyName(ks Keysym) string {
	return keysymName()[ks]
}

var keysymName = sync.OnceValue(func() map[Keysym]string {
	m := make(map[Keysym]string, len(keysymNames))
	for n, ks := range keysymNames {
		if prev, ok := m[ks]; !ok || n < prev {
			m[ks] = n
		}
	}
	return m
})

// ParseCombo splits a key combination written with "+" ("ctrl+shift+t",
// "ctrl++") into key names. A "+" that follows a separator, or stands alone,
// is the plus key.
func ParseCombo(s string) []string {
	var out []string
	tok := ""
	afterSep := false
	for _, r := range s {
		if r != '+' {
			tok += string(r)
			continue
		}
		if t := strings.TrimSpace(tok); t != "" {
			out = append(out, t)
			afterSep = true
		} else {
			out = append(out, "plus")
			afterSep = false
		}
		tok = ""
	}
	if t := strings.TrimSpace(tok); t != "" {
		out = append(out, t)
	} else if afterSep {
		out = append(out, "plus")
	}
	return out
}

// RuneKeysym is the keysym that types r: Latin-1 characters have their own
// value, everything else the Unicode keysym 0x01000000+r.
func RuneKeysym(r rune) Keysym {
	switch r {
	case '\n', '\r':
		return keysymNames["Return"]
	case '\t':
		return keysymNames["Tab"]
	case '\b':
		return keysymNames["BackSpace"]
	case 0x1b:
		return keysymNames["Escape"]
	}
	if (r >= 0x20 && r <= 0x7e) || (r >= 0xa0 && r <= 0xff) {
		return Keysym(r)
	}
	return Keysym(0x01000000 | uint32(r))
}

// KeysymRune is the character a keysym types, or -1 for keys that type none
// (modifiers, function keys).
func KeysymRune(ks Keysym) rune {
	switch {
	case (ks >= 0x20 && ks <= 0x7e) || (ks >= 0xa0 && ks <= 0xff):
		return rune(ks)
	case ks >= 0x01000100 && ks <= 0x0110ffff:
		return rune(ks - 0x01000000)
	}
	if r, ok := legacyKeysymRunes[ks]; ok {
		return r
	}
	switch ks {
	case keysymNames["Return"]:
		return '\n'
	case keysymNames["Tab"]:
		return '\t'
	}
	return -1
}

// IsModifier reports whether ks is a modifier key (shift, control, alt,
// super, meta, hyper, level shifts, locks).
func IsModifier(ks Keysym) bool {
	return (ks >= 0xffe1 && ks <= 0xffee) || (ks >= 0xfe01 && ks <= 0xfe13) || ks == 0xff7e
}
