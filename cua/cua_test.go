package cua

import (
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/google/go-cmp/cmp"
)

func TestChooseDisplay(t *testing.T) {
	for _, c := range []struct {
		screen, want desktop.Size
	}{
		{desktop.Size{Width: 1024, Height: 768}, desktop.Size{Width: 1024, Height: 768}},
		{desktop.Size{Width: 1600, Height: 1200}, desktop.Size{Width: 1024, Height: 768}},
		{desktop.Size{Width: 1280, Height: 800}, desktop.Size{Width: 1280, Height: 800}},
		{desktop.Size{Width: 2560, Height: 1600}, desktop.Size{Width: 1280, Height: 800}},
		{desktop.Size{Width: 1920, Height: 1080}, desktop.Size{Width: 1366, Height: 768}},
		{desktop.Size{Width: 3840, Height: 2160}, desktop.Size{Width: 1366, Height: 768}},
		{desktop.Size{Width: 800, Height: 600}, desktop.Size{Width: 800, Height: 600}},     // smaller than XGA: as is
		{desktop.Size{Width: 1000, Height: 1000}, desktop.Size{Width: 1000, Height: 1000}}, // unusual ratio, small
		{desktop.Size{Width: 2000, Height: 2000}, desktop.Size{Width: 1011, Height: 1011}}, // unusual ratio, scaled to WXGA's pixels
	} {
		if got := ChooseDisplay(c.screen); got != c.want {
			t.Errorf("ChooseDisplay(%v) = %v, want %v", c.screen, got, c.want)
		}
	}
}

func TestParseDisplay(t *testing.T) {
	for in, want := range map[string]desktop.Size{
		"XGA": {Width: 1024, Height: 768}, "wxga": {Width: 1280, Height: 800}, "FWXGA": {Width: 1366, Height: 768},
		"1080p": {Width: 1920, Height: 1080}, "800x600": {Width: 800, Height: 600},
	} {
		if got, err := ParseDisplay(in); err != nil || got != want {
			t.Errorf("ParseDisplay(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "big", "0x10", "10x", "x10", "9000x10", "-5x5"} {
		if _, err := ParseDisplay(in); err == nil {
			t.Errorf("ParseDisplay(%q) succeeded, want an error", in)
		}
	}
}

func TestScaler(t *testing.T) {
	s, err := NewScaler(desktop.Size{Width: 1920, Height: 1080}, desktop.Size{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, screen desktop.Point }{
		{desktop.Point{X: 0, Y: 0}, desktop.Point{X: 0, Y: 0}},
		{desktop.Point{X: 683, Y: 384}, desktop.Point{X: 960, Y: 540}},
		{desktop.Point{X: 1365, Y: 767}, desktop.Point{X: 1919, Y: 1079}},
	} {
		got, err := s.Point(float64(c.in.X), float64(c.in.Y), "coordinate")
		if err != nil || got != c.screen {
			t.Errorf("Point(%v) = %v, %v; want %v", c.in, got, err, c.screen)
		}
		if back := s.ToDisplay(got); back != c.in {
			t.Errorf("ToDisplay(%v) = %v, want %v", got, back, c.in)
		}
	}
	if _, err := s.Point(1366, 0, "coordinate"); desktop.CodeOf(err) != desktop.CodeOutOfBounds {
		t.Errorf("Point(1366, 0) = %v, want out_of_bounds", err)
	}
	r, err := s.Region([]float64{0, 0, 1366, 768}, "region")
	if err != nil || r != (desktop.Rect{Width: 1920, Height: 1080}) {
		t.Errorf("Region(whole display) = %v, %v; want the whole screen", r, err)
	}
	z := s.Zoom(r, "")
	if z.Width > 1366 || z.Height > 768 || z.Width == 0 {
		t.Errorf("Zoom of the whole screen = %dx%d, want it to fit the display", z.Width, z.Height)
	}
}

func TestKeys(t *testing.T) {
	got, err := XdotoolKeys("ctrl+a BackSpace super+Return KP_0 ctrl++", "text")
	want := [][]string{{"Control_L", "a"}, {"BackSpace"}, {"Super_L", "Return"}, {"KP_0"}, {"Control_L", "plus"}}
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("XdotoolKeys = %v, %v; want %v", got, err, want)
	}
	o, err := OpenAIKeys([]string{"CTRL", "ENTER", "ARROWLEFT", "CMD", "META", "ESC", "SPACE", "PAGEUP", "a", "/"}, "keys")
	wantO := []string{"Control_L", "Return", "Left", "Super_L", "Super_L", "Escape", "space", "Page_Up", "a", "slash"}
	if err != nil || !cmp.Equal(o, wantO) {
		t.Errorf("OpenAIKeys = %v, %v; want %v", o, err, wantO)
	}
	for _, bad := range []string{"", "   ", "nosuch", "ctrl+nosuch"} {
		if _, err := XdotoolKeys(bad, "text"); err == nil {
			t.Errorf("XdotoolKeys(%q) succeeded, want an error", bad)
		}
	}
	if _, err := OpenAIKeys([]string{"HYPERSPACE"}, "keys"); desktop.CodeOf(err) != desktop.CodeUnknownKey {
		t.Errorf("OpenAIKeys(HYPERSPACE) = %v, want unknown_key", err)
	}
}
