package cua

import (
	"math"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Profile is a named display size that models are trained on.
type Profile struct {
	Name string
	Size desktop.Size
}

// Profiles lists the display profiles, smallest first: XGA 1024x768 (4:3),
// WXGA 1280x800 (16:10), FWXGA 1366x768 (about 16:9) and 1080p 1920x1080.
func Profiles() []Profile {
	return []Profile{
		{"XGA", desktop.Size{Width: 1024, Height: 768}},
		{"WXGA", desktop.Size{Width: 1280, Height: 800}},
		{"FWXGA", desktop.Size{Width: 1366, Height: 768}},
		{"1080p", desktop.Size{Width: 1920, Height: 1080}},
	}
}

// maxPixels bounds the display chosen for a screen of an unusual aspect
// ratio: about what a WXGA display holds.
const maxPixels = 1280 * 800

// ChooseDisplay picks the size to show a model for a screen: the first
// profile with the screen's aspect ratio (within 2%) that is no larger than
// the screen; for another aspect ratio the screen itself when it is small
// enough, else the screen scaled down, keeping its aspect ratio, to about
// the pixel count of WXGA.
func ChooseDisplay(screen desktop.Size) desktop.Size {
	if screen.Width <= 0 || screen.Height <= 0 {
		return screen
	}
	ratio := float64(screen.Width) / float64(screen.Height)
	for _, p := range Profiles() {
		r := float64(p.Size.Width) / float64(p.Size.Height)
		if math.Abs(r-ratio) < 0.02 && p.Size.Width <= screen.Width && p.Size.Height <= screen.Height {
			return p.Size
		}
	}
	px := screen.Width * screen.Height
	if px <= maxPixels {
		return screen
	}
	f := math.Sqrt(float64(maxPixels) / float64(px))
	return desktop.Size{Width: max(1, int(float64(screen.Width)*f)), Height: max(1, int(float64(screen.Height)*f))}
}

// ParseDisplay reads a display size: a profile name (XGA, WXGA, FWXGA,
// 1080p; case does not matter) or WIDTHxHEIGHT.
func ParseDisplay(s string) (desktop.Size, error) {
	s = strings.TrimSpace(s)
	for _, p := range Profiles() {
		if strings.EqualFold(s, p.Name) {
			return p.Size, nil
		}
	}
	w, h, ok := strings.Cut(strings.ToLower(s), "x")
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || wi < 1 || hi < 1 || wi > 8192 || hi > 8192 {
		return desktop.Size{}, desktop.Errorf(desktop.CodeInvalid,
			"bad display size %q; use XGA, WXGA, FWXGA, 1080p or WIDTHxHEIGHT such as 1280x800", s)
	}
	return desktop.Size{Width: wi, Height: hi}, nil
}

// Scaler maps points between the display a model is shown and the real
// screen.
type Scaler struct {
	Screen  desktop.Size // the real screen
	Display desktop.Size // what the model sees
}

// NewScaler returns the Scaler for a screen and a display; a zero display
// is chosen with ChooseDisplay.
func NewScaler(screen, display desktop.Size) (Scaler, error) {
	if screen.Width <= 0 || screen.Height <= 0 {
		return Scaler{}, desktop.Errorf(desktop.CodeInvalid, "screen size %dx%d is not positive", screen.Width, screen.Height)
	}
	if display == (desktop.Size{}) {
		display = ChooseDisplay(screen)
	}
	if display.Width <= 0 || display.Height <= 0 || display.Width > 8192 || display.Height > 8192 {
		return Scaler{}, desktop.Errorf(desktop.CodeInvalid, "display size %dx%d must be 1 to 8192 on each side", display.Width, display.Height)
	}
	return Scaler{Screen: screen, Display: display}, nil
}

// Scaled reports whether the display differs from the screen.
func (s Scaler) Scaled() bool { return s.Screen != s.Display }

// ToScreen maps a point on the display to the screen.
func (s Scaler) ToScreen(p desktop.Point) desktop.Point {
	return desktop.Point{
		X: scale(p.X, s.Display.Width, s.Screen.Width),
		Y: scale(p.Y, s.Display.Height, s.Screen.Height),
	}
}

// ToDisplay maps a point on the screen to the display.
func (s Scaler) ToDisplay(p desktop.Point) desktop.Point {
	return desktop.Point{
		X: scale(p.X, s.Screen.Width, s.Display.Width),
		Y: scale(p.Y, s.Screen.Height, s.Display.Height),
	}
}

// scale maps v from a range of n pixels to one of m, rounding and staying
// inside [0, m-1].
func scale(v, n, m int) int {
	if n == m {
		return v
	}
	r := int(math.Round(float64(v) * float64(m) / float64(n)))
	return min(max(r, 0), m-1)
}

// Point checks a point the model gave (display coordinates) and maps it to
// the screen.
func (s Scaler) Point(x, y float64, field string) (desktop.Point, error) {
	p, err := s.displayPoint(x, y, field, false)
	if err != nil {
		return desktop.Point{}, err
	}
	return s.ToScreen(p), nil
}

// displayPoint checks a point on the display; edge allows x == width and
// y == height (a corner of a region).
func (s Scaler) displayPoint(x, y float64, field string, edge bool) (desktop.Point, error) {
	if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
		return desktop.Point{}, Invalid(field, "%s must be numbers", field)
	}
	p := desktop.Point{X: int(math.Round(x)), Y: int(math.Round(y))}
	w, h := s.Display.Width-1, s.Display.Height-1
	if edge {
		w, h = s.Display.Width, s.Display.Height
	}
	if p.X < 0 || p.Y < 0 || p.X > w || p.Y > h {
		e := Invalid(field, "%s (%d, %d) is outside the %dx%d display; x must be 0 to %d and y 0 to %d",
			field, p.X, p.Y, s.Display.Width, s.Display.Height, w, h)
		e.Code = desktop.CodeOutOfBounds
		return desktop.Point{}, e
	}
	return p, nil
}

// Region checks a region [x0, y0, x1, y1] the model gave (display
// coordinates, x1 and y1 exclusive) and maps it to a rectangle on the
// screen.
func (s Scaler) Region(v []float64, field string) (desktop.Rect, error) {
	if len(v) != 4 {
		return desktop.Rect{}, Invalid(field, "%s must be [x0, y0, x1, y1], got %d numbers", field, len(v))
	}
	a, err := s.displayPoint(v[0], v[1], field, true)
	if err != nil {
		return desktop.Rect{}, err
	}
	b, err := s.displayPoint(v[2], v[3], field, true)
	if err != nil {
		return desktop.Rect{}, err
	}
	if b.X <= a.X || b.Y <= a.Y {
		return desktop.Rect{}, Invalid(field, "%s [%d, %d, %d, %d] is empty; x1 must be greater than x0 and y1 greater than y0",
			field, a.X, a.Y, b.X, b.Y)
	}
	x0 := scale(a.X, s.Display.Width, s.Screen.Width)
	y0 := scale(a.Y, s.Display.Height, s.Screen.Height)
	x1 := min(s.Screen.Width, int(math.Round(float64(b.X)*float64(s.Screen.Width)/float64(s.Display.Width))))
	y1 := min(s.Screen.Height, int(math.Round(float64(b.Y)*float64(s.Screen.Height)/float64(s.Display.Height))))
	return desktop.Rect{X: x0, Y: y0, Width: max(1, x1-x0), Height: max(1, y1-y0)}, nil
}

// Screenshot returns the options of a whole-screen screenshot at the
// display size, in format ("" is png).
func (s Scaler) Screenshot(format string) *desktop.ScreenshotOptions {
	o := &desktop.ScreenshotOptions{Format: format}
	if s.Scaled() {
		o.Width, o.Height = s.Display.Width, s.Display.Height
	}
	return o
}

// Zoom returns the options of a screenshot of a screen region at full
// resolution, scaled down (keeping its aspect ratio) only where it is larger
// than the display.
func (s Scaler) Zoom(r desktop.Rect, format string) *desktop.ScreenshotOptions {
	o := &desktop.ScreenshotOptions{Format: format, Region: &r}
	if r.Width > s.Display.Width || r.Height > s.Display.Height {
		f := min(float64(s.Display.Width)/float64(r.Width), float64(s.Display.Height)/float64(r.Height))
		o.Width = max(1, int(float64(r.Width)*f))
		o.Height = max(1, int(float64(r.Height)*f))
	}
	return o
}

// Invalid returns an invalid-argument error about field.
func Invalid(field, format string, args ...any) *desktop.Error {
	e := desktop.Errorf(desktop.CodeInvalid, format, args...)
	e.Field = field
	return e
}
