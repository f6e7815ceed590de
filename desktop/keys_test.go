package desktop

import (
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestLookupKey(t *testing.T) {
	tests := []struct {
		name string
		want Keysym
	}{
		{"Return", 0xff0d},
		{"enter", 0xff0d},
		{"ENTER", 0xff0d},
		{"ctrl", 0xffe3},
		{"Control_L", 0xffe3},
		{"CTRL", 0xffe3},
		{"cmd", 0xffeb},
		{"win", 0xffeb},
		{"super", 0xffeb},
		{"alt", 0xffe9},
		{"shift", 0xffe1},
		{"esc", 0xff1b},
		{"page_down", 0xff56},
		{"PageDown", 0xff56},
		{"Page_Down", 0xff56},
		{"ArrowLeft", 0xff51},
		{"left", 0xff51},
		{"f5", 0xffc2},
		{"F12", 0xffc9},
		{"space", 0x20},
		{"BackSpace", 0xff08},
		{"backspace", 0xff08},
		{"Delete", 0xffff},
		{"KP_Enter", 0xff8d},
		{"XF86AudioMute", 0x1008ff12},
		{"a", 'a'},
		{"A", 'A'},
		{"é", 0xe9},
		{"€", 0x010020ac},
		{"東", 0x01006771},
		{"plus", '+'},
		{"+", '+'},
		{"agrave", 0xe0},
		{"Agrave", 0xc0},
	}
	for _, tt := range tests {
		got, ok := LookupKey(tt.name)
		if !ok || got != tt.want {
			t.Errorf("LookupKey(%q) = %#x, %v; want %#x", tt.name, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "ctrl+l", "notakey", "\x00", "\n", "Return "} {
		if ks, ok := LookupKey(bad); ok {
			t.Errorf("LookupKey(%q) = %#x, want not found", bad, ks)
		}
	}
}

func TestParseCombo(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"ctrl+l", []string{"ctrl", "l"}},
		{"ctrl+shift+t", []string{"ctrl", "shift", "t"}},
		{"Return", []string{"Return"}},
		{"ctrl++", []string{"ctrl", "plus"}},
		{"+", []string{"plus"}},
		{" alt + F4 ", []string{"alt", "F4"}},
		{"", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, ParseCombo(tt.in)); diff != "" {
			t.Errorf("ParseCombo(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestRuneKeysymRoundTrip(t *testing.T) {
	for _, r := range "aZ09 ~!é€東☃ñß—\u00a0" {
		ks := RuneKeysym(r)
		if got := KeysymRune(ks); got != r {
			t.Errorf("KeysymRune(RuneKeysym(%q)) = %q (keysym %#x)", r, got, ks)
		}
	}
	if RuneKeysym('\n') != 0xff0d || RuneKeysym('\t') != 0xff09 {
		t.Errorf("newline and tab must type Return and Tab")
	}
	// Legacy keysyms from the headers map to their characters.
	if got := KeysymRune(keysymNames["Greek_alpha"]); got != 'α' {
		t.Errorf("KeysymRune(Greek_alpha) = %q, want α", got)
	}
	if got := KeysymRune(keysymNames["F1"]); got != -1 {
		t.Errorf("KeysymRune(F1) = %q, want -1", got)
	}
}

func TestKeyName(t *testing.T) {
	if got := KeyName(0xff0d); got != "Return" {
		t.Errorf("KeyName(0xff0d) = %q, want Return", got)
	}
	if !IsModifier(0xffe3) || IsModifier('a') {
		t.Errorf("IsModifier wrong for Control_L or a")
	}
}

func FuzzLookupKey(f *testing.F) {
	for _, s := range []string{"ctrl", "Return", "é", "F5", "ArrowLeft", "", "+", "ctrl+l"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ks, ok := LookupKey(s)
		if ok && ks == 0 {
			t.Fatalf("LookupKey(%q) found keysym 0", s)
		}
		for _, k := range ParseCombo(s) {
			if k == "" {
				t.Fatalf("ParseCombo(%q) has an empty key", s)
			}
		}
		if utf8.ValidString(s) && utf8.RuneCountInString(s) == 1 && ok {
			r, _ := utf8.DecodeRuneInString(s)
			if KeysymRune(ks) != r {
				t.Fatalf("LookupKey(%q) = %#x does not type %q", s, ks, r)
			}
		}
	})
}
