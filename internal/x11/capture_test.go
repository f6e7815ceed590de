package x11

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/pngenc"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// painter draws on a display over a connection of its own, the way another
// client would. It selects no events, so it never reads any.
type painter struct {
	t      testing.TB
	xc     *xgb.Conn
	screen *xproto.ScreenInfo
	root   xproto.Window
	gc     xproto.Gcontext
}

func newPainter(t testing.TB, display string) *painter {
	t.Helper()
	n, err := DisplayNumber(display)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := dialSocket(context.Background(), n)
	if err != nil {
		t.Fatalf("painter: %v", err)
	}
	xc, err := xgb.NewConnNet(nc)
	if err != nil {
		t.Fatalf("painter: connect to %s: %v", display, err)
	}
	t.Cleanup(xc.Close)
	p := &painter{t: t, xc: xc, screen: xproto.Setup(xc).DefaultScreen(xc)}
	p.root = p.screen.Root
	if p.gc, err = xproto.NewGcontextId(xc); err != nil {
		t.Fatalf("painter: gc id: %v", err)
	}
	if err := xproto.CreateGCChecked(xc, p.gc, xproto.Drawable(p.root), 0, nil).Check(); err != nil {
		t.Fatalf("painter: create gc: %v", err)
	}
	return p
}

// fill paints rects of d in colour 0xRRGGBB and waits until the server did.
func (p *painter) fill(d xproto.Drawable, color uint32, rects ...xproto.Rectangle) {
	p.t.Helper()
	p.fillAsync(d, color, rects...)
	p.sync()
}

// fillAsync paints without waiting.
func (p *painter) fillAsync(d xproto.Drawable, color uint32, rects ...xproto.Rectangle) {
	xproto.ChangeGC(p.xc, p.gc, xproto.GcForeground, []uint32{color})
	xproto.PolyFillRectangle(p.xc, d, p.gc, rects)
}

// background sets the root background to color and repaints the screen.
func (p *painter) background(color uint32) {
	p.t.Helper()
	xproto.ChangeWindowAttributes(p.xc, p.root, xproto.CwBackPixel, []uint32{color})
	xproto.ClearArea(p.xc, false, p.root, 0, 0, 0, 0)
	p.sync()
}

// window maps an override-redirect window with background bg.
func (p *painter) window(x, y, w, h int, bg uint32) xproto.Window {
	p.t.Helper()
	win, err := xproto.NewWindowId(p.xc)
	if err != nil {
		p.t.Fatalf("painter: window id: %v", err)
	}
	err = xproto.CreateWindowChecked(p.xc, 0, win, p.root, int16(x), int16(y), uint16(w), uint16(h), 0,
		xproto.WindowClassInputOutput, p.screen.RootVisual,
		xproto.CwBackPixel|xproto.CwOverrideRedirect, []uint32{bg, 1}).Check()
	if err != nil {
		p.t.Fatalf("painter: create window: %v", err)
	}
	if err := xproto.MapWindowChecked(p.xc, win).Check(); err != nil {
		p.t.Fatalf("painter: map window: %v", err)
	}
	p.sync()
	return win
}

// warp moves the pointer to (x, y).
func (p *painter) warp(x, y int) {
	p.t.Helper()
	xproto.WarpPointer(p.xc, 0, p.root, 0, 0, 0, 0, int16(x), int16(y))
	p.sync()
}

// sync waits until the server processed every request sent so far.
func (p *painter) sync() {
	p.t.Helper()
	if _, err := xproto.GetInputFocus(p.xc).Reply(); err != nil {
		p.t.Fatalf("painter: round trip: %v", err)
	}
}

// grab reads the screen over the socket: the reference picture, BGRX.
func (p *painter) grab(x, y, w, h int) []byte {
	p.t.Helper()
	r, err := xproto.GetImage(p.xc, xproto.ImageFormatZPixmap, xproto.Drawable(p.root),
		int16(x), int16(y), uint16(w), uint16(h), ^uint32(0)).Reply()
	if err != nil {
		p.t.Fatalf("painter: get image: %v", err)
	}
	return r.Data[:w*h*4]
}

func xrect(x, y, w, h int) xproto.Rectangle {
	return xproto.Rectangle{X: int16(x), Y: int16(y), Width: uint16(w), Height: uint16(h)}
}

// setupCapture starts an Xvfb of w x h and returns a connection to it and a
// painter.
func setupCapture(t testing.TB, w, h int) (*Conn, *painter) {
	t.Helper()
	s := xvfbtest.Start(t, xvfbtest.Options{Width: w, Height: h})
	c := dialCapture(t, s.Display, Config{})
	return c, newPainter(t, s.Display)
}

func dialCapture(t testing.TB, display string, cfg Config) *Conn {
	t.Helper()
	cfg.Display = display
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial(%s): %v", display, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func shot(t testing.TB, c *Conn, opts desktop.ScreenshotOptions) *desktop.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	img, err := c.Screenshot(ctx, opts)
	if err != nil {
		t.Fatalf("Screenshot(%+v): %v", opts, err)
	}
	return img
}

// decodeImage decodes a PNG or JPEG into BGRX bytes with stride w*4.
func decodeImage(t testing.TB, img *desktop.Image) []byte {
	t.Helper()
	var m image.Image
	var err error
	switch img.Format {
	case "png":
		m, err = png.Decode(bytes.NewReader(img.Data))
	case "jpeg":
		m, err = jpeg.Decode(bytes.NewReader(img.Data))
	default:
		t.Fatalf("format %q", img.Format)
	}
	if err != nil {
		t.Fatalf("decode %s: %v", img.Format, err)
	}
	b := m.Bounds()
	if b.Dx() != img.Width || b.Dy() != img.Height {
		t.Fatalf("decoded %s is %dx%d, Image says %dx%d", img.Format, b.Dx(), b.Dy(), img.Width, img.Height)
	}
	out := make([]byte, b.Dx()*b.Dy()*4)
	if rgba, ok := m.(*image.RGBA); ok {
		for y := range b.Dy() {
			row := rgba.Pix[y*rgba.Stride : y*rgba.Stride+b.Dx()*4]
			for i := 0; i < len(row); i += 4 {
				o := y*b.Dx()*4 + i
				out[o], out[o+1], out[o+2] = row[i+2], row[i+1], row[i]
			}
		}
		return out
	}
	for y := range b.Dy() {
		for x := range b.Dx() {
			r, g, bl, _ := m.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := (y*b.Dx() + x) * 4
			out[i], out[i+1], out[i+2] = byte(bl>>8), byte(g>>8), byte(r>>8)
		}
	}
	return out
}

// pixelAt returns the 0xRRGGBB colour at (x, y) of a BGRX picture w wide.
func pixelAt(pix []byte, w, x, y int) uint32 {
	i := (y*w + x) * 4
	return uint32(pix[i+2])<<16 | uint32(pix[i+1])<<8 | uint32(pix[i])
}

// firstDiff describes where two BGRX pictures of width w differ (the unused
// byte aside), or returns "".
func firstDiff(got, want []byte, w int) string {
	if len(got) != len(want) {
		return fmt.Sprintf("size %d, want %d", len(got), len(want))
	}
	n, first := 0, -1
	for i := 0; i < len(got); i += 4 {
		if got[i] != want[i] || got[i+1] != want[i+1] || got[i+2] != want[i+2] {
			if first < 0 {
				first = i / 4
			}
			n++
		}
	}
	if n == 0 {
		return ""
	}
	x, y := first%w, first/w
	return fmt.Sprintf("%d pixels differ, first at (%d,%d): got %06x, want %06x",
		n, x, y, pixelAt(got, w, x, y), pixelAt(want, w, x, y))
}

// paintPattern paints a known picture: a blue background, a red window with a
// green square inside it, and a white bar on the last row of the screen.
func paintPattern(p *painter, w, h int) xproto.Window {
	p.background(0x0000ff)
	win := p.window(100, 50, 200, 100, 0xff0000)
	p.fill(xproto.Drawable(win), 0x00ff00, xrect(10, 10, 20, 20))
	p.fill(xproto.Drawable(p.root), 0xffffff, xrect(0, h-1, w, 1))
	return win
}

func TestScreenshotPNGPixels(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	paintPattern(p, w, h)
	img := shot(t, c, desktop.ScreenshotOptions{})
	if img.Format != "png" || img.Width != w || img.Height != h || img.Cached {
		t.Fatalf("got %s %dx%d cached=%v, want png %dx%d not cached", img.Format, img.Width, img.Height, img.Cached, w, h)
	}
	got := decodeImage(t, img)
	for _, tc := range []struct {
		x, y int
		want uint32
	}{
		{0, 0, 0x0000ff},
		{99, 50, 0x0000ff},
		{100, 50, 0xff0000},
		{299, 149, 0xff0000},
		{300, 149, 0x0000ff},
		{110, 60, 0x00ff00},
		{129, 79, 0x00ff00},
		{130, 80, 0xff0000},
		{0, h - 1, 0xffffff},
		{w - 1, h - 1, 0xffffff},
		{w - 1, h - 2, 0x0000ff},
	} {
		if c := pixelAt(got, w, tc.x, tc.y); c != tc.want {
			t.Errorf("pixel (%d,%d) = %06x, want %06x", tc.x, tc.y, c, tc.want)
		}
	}
	if d := firstDiff(got, p.grab(0, 0, w, h), w); d != "" {
		t.Errorf("screenshot vs GetImage: %s", d)
	}
}

func TestScreenshotJPEG(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	paintPattern(p, w, h)
	for _, q := range []int{0, 50, 95} {
		img := shot(t, c, desktop.ScreenshotOptions{Format: "jpeg", Quality: q})
		if img.Format != "jpeg" || img.Width != w || img.Height != h {
			t.Fatalf("quality %d: got %s %dx%d, want jpeg %dx%d", q, img.Format, img.Width, img.Height, w, h)
		}
		got := decodeImage(t, img)
		// Inside flat areas, away from edges, JPEG stays close.
		for _, tc := range []struct {
			x, y int
			want uint32
		}{{20, 20, 0x0000ff}, {200, 120, 0xff0000}, {120, 70, 0x00ff00}, {500, 400, 0x0000ff}} {
			if d := colorDist(pixelAt(got, w, tc.x, tc.y), tc.want); d > 40 {
				t.Errorf("quality %d: pixel (%d,%d) = %06x, want about %06x (distance %d)", q, tc.x, tc.y, pixelAt(got, w, tc.x, tc.y), tc.want, d)
			}
		}
	}
}

// colorDist is the largest channel difference of two 0xRRGGBB colours.
func colorDist(a, b uint32) int {
	d := 0
	for s := 0; s < 24; s += 8 {
		x, y := int(a>>s&0xff), int(b>>s&0xff)
		d = max(d, x-y, y-x)
	}
	return d
}

func TestScreenshotRegion(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	paintPattern(p, w, h)
	for _, r := range []desktop.Rect{
		{X: 90, Y: 40, Width: 50, Height: 30},
		{X: 0, Y: 0, Width: 1, Height: 1},
		{X: w - 7, Y: h - 3, Width: 7, Height: 3},
		{X: 0, Y: 100, Width: w, Height: 1},
	} {
		t.Run(fmt.Sprintf("%dx%d+%d+%d", r.Width, r.Height, r.X, r.Y), func(t *testing.T) {
			img := shot(t, c, desktop.ScreenshotOptions{Region: &r})
			if img.Width != r.Width || img.Height != r.Height {
				t.Fatalf("got %dx%d, want %dx%d", img.Width, img.Height, r.Width, r.Height)
			}
			if d := firstDiff(decodeImage(t, img), p.grab(r.X, r.Y, r.Width, r.Height), r.Width); d != "" {
				t.Errorf("region vs GetImage: %s", d)
			}
		})
	}
}

func TestScreenshotScale(t *testing.T) {
	const w, h = 1024, 768
	c, p := setupCapture(t, w, h)
	p.background(0x000000)
	// The left half: one-pixel white and black stripes both ways, which
	// average to mid grey when halved. The right half: flat colours.
	var white []xproto.Rectangle
	for y := 0; y < h; y += 2 {
		white = append(white, xrect(0, y, w/2, 1))
	}
	p.fill(xproto.Drawable(p.root), 0xffffff, white...)
	p.fill(xproto.Drawable(p.root), 0x204080, xrect(w/2, 0, w/2, h/2))
	p.fill(xproto.Drawable(p.root), 0xc0a000, xrect(w/2, h/2, w/2, h/2))

	img := shot(t, c, desktop.ScreenshotOptions{Width: 512, Height: 384})
	if img.Width != 512 || img.Height != 384 {
		t.Fatalf("got %dx%d, want 512x384", img.Width, img.Height)
	}
	got := decodeImage(t, img)
	for _, tc := range []struct {
		x, y int
		want uint32
	}{{10, 10, 0x808080}, {200, 300, 0x808080}, {300, 100, 0x204080}, {500, 300, 0xc0a000}, {257, 191, 0x204080}, {257, 192, 0xc0a000}} {
		if d := colorDist(pixelAt(got, 512, tc.x, tc.y), tc.want); d > 1 {
			t.Errorf("pixel (%d,%d) = %06x, want %06x", tc.x, tc.y, pixelAt(got, 512, tc.x, tc.y), tc.want)
		}
	}

	for _, tc := range []struct {
		name         string
		opts         desktop.ScreenshotOptions
		wantW, wantH int
	}{
		{"width only", desktop.ScreenshotOptions{Width: 800}, 800, 600},
		{"height only", desktop.ScreenshotOptions{Height: 300}, 400, 300},
		{"grow", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 512, Y: 0, Width: 256, Height: 192}, Width: 768}, 768, 576},
		{"region width only", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 512, Y: 0, Width: 512, Height: 256}, Width: 100}, 100, 50},
		{"jpeg", desktop.ScreenshotOptions{Format: "jpeg", Width: 640}, 640, 480},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := shot(t, c, tc.opts)
			if img.Width != tc.wantW || img.Height != tc.wantH {
				t.Fatalf("got %dx%d, want %dx%d", img.Width, img.Height, tc.wantW, tc.wantH)
			}
			got := decodeImage(t, img)
			// The flat blue quarter stays blue at any scale.
			x, y := img.Width*3/4, img.Height/4
			if tc.opts.Region != nil {
				x, y = img.Width/2, img.Height/2
			}
			if d := colorDist(pixelAt(got, img.Width, x, y), 0x204080); d > 6 {
				t.Errorf("pixel (%d,%d) = %06x, want about 204080", x, y, pixelAt(got, img.Width, x, y))
			}
		})
	}
}

func TestScreenshotInvalidOptions(t *testing.T) {
	c, _ := setupCapture(t, 640, 480)
	for _, tc := range []struct {
		name string
		opts desktop.ScreenshotOptions
		code string
	}{
		{"region outside", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 600, Y: 0, Width: 100, Height: 10}}, desktop.CodeOutOfBounds},
		{"region below", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 0, Y: 480, Width: 1, Height: 1}}, desktop.CodeOutOfBounds},
		{"empty region", desktop.ScreenshotOptions{Region: &desktop.Rect{X: 0, Y: 0, Width: 0, Height: 1}}, desktop.CodeOutOfBounds},
		{"quality for png", desktop.ScreenshotOptions{Quality: 50}, desktop.CodeInvalid},
		{"quality too high", desktop.ScreenshotOptions{Format: "jpeg", Quality: 101}, desktop.CodeInvalid},
		{"unknown format", desktop.ScreenshotOptions{Format: "gif"}, desktop.CodeInvalid},
		{"negative width", desktop.ScreenshotOptions{Width: -1}, desktop.CodeInvalid},
		{"huge height", desktop.ScreenshotOptions{Height: 10000}, desktop.CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := c.Screenshot(context.Background(), tc.opts)
			if err == nil {
				t.Fatalf("got %dx%d image, want an error", img.Width, img.Height)
			}
			if !errors.Is(err, desktop.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if got := desktop.CodeOf(err); got != tc.code {
				t.Errorf("code %q, want %q", got, tc.code)
			}
		})
	}
}

func TestScreenshotCache(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	win := paintPattern(p, w, h)
	full := desktop.ScreenshotOptions{}
	region := desktop.ScreenshotOptions{Region: &desktop.Rect{X: 0, Y: 200, Width: 100, Height: 100}}
	scaled := desktop.ScreenshotOptions{Width: 320}
	jpg := desktop.ScreenshotOptions{Format: "jpeg"}
	all := []desktop.ScreenshotOptions{full, region, scaled, jpg}
	for _, o := range all {
		shot(t, c, o)
	}
	for _, o := range all {
		a, b := shot(t, c, o), shot(t, c, o)
		if !a.Cached || !b.Cached || !bytes.Equal(a.Data, b.Data) {
			t.Errorf("%+v unchanged: cached %v, %v, same bytes %v; want cached, same bytes", o, a.Cached, b.Cached, bytes.Equal(a.Data, b.Data))
		}
	}

	colour := uint32(0x000001)
	for _, tc := range []struct {
		name string
		d    xproto.Drawable
		r    xproto.Rectangle
		// screen position of the change
		x, y int
	}{
		{"top left pixel", xproto.Drawable(p.root), xrect(0, 0, 1, 1), 0, 0},
		{"last row", xproto.Drawable(p.root), xrect(w-1, h-1, 1, 1), w - 1, h - 1},
		{"middle", xproto.Drawable(p.root), xrect(400, 300, 3, 2), 400, 300},
		{"row 63", xproto.Drawable(p.root), xrect(5, 63, 1, 1), 5, 63},
		{"row 64", xproto.Drawable(p.root), xrect(5, 64, 1, 1), 5, 64},
		{"child window", xproto.Drawable(win), xrect(150, 90, 2, 2), 250, 140},
		{"inside region", xproto.Drawable(p.root), xrect(50, 250, 1, 1), 50, 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			colour += 0x010203
			p.fill(tc.d, colour, tc.r)
			img := shot(t, c, full)
			if img.Cached {
				t.Fatalf("full screenshot cached after drawing %s", tc.name)
			}
			if got := pixelAt(decodeImage(t, img), w, tc.x, tc.y); got != colour {
				t.Errorf("pixel (%d,%d) = %06x, want %06x", tc.x, tc.y, got, colour)
			}
			// A change within one strip re-encodes only that strip.
			if st := pngStats(c, full); st.Encoded != 1 {
				t.Errorf("%d of %d strips encoded after a change in one, want 1", st.Encoded, st.Strips)
			}
			if again := shot(t, c, full); !again.Cached || !bytes.Equal(again.Data, img.Data) {
				t.Errorf("second screenshot: cached %v, same bytes %v; want both", again.Cached, bytes.Equal(again.Data, img.Data))
			}
			// The other shapes see the change too, each once.
			for _, o := range []desktop.ScreenshotOptions{scaled, jpg} {
				if img := shot(t, c, o); img.Cached {
					t.Errorf("%+v cached after drawing %s", o, tc.name)
				}
			}
			r := shot(t, c, region)
			inside := tc.y >= 200 && tc.y < 300
			if inside && r.Cached {
				t.Errorf("region cached after drawing inside it")
			}
		})
	}
}

// TestScreenshotNeverStale draws in random places across many frames and
// compares every screenshot with a GetImage of the same moment: the strip
// cache and the scaler must never serve rows from an older frame.
func TestScreenshotNeverStale(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	p.background(0x336699)
	win := p.window(300, 200, 300, 200, 0x996633)
	rng := rand.New(rand.NewPCG(1, 2))
	scaledOpts := desktop.ScreenshotOptions{Width: 427}
	reused := 0
	for i := range 40 {
		for range rng.IntN(4) {
			x, y := rng.IntN(w), rng.IntN(h)
			rw, rh := 1+rng.IntN(60), 1+rng.IntN(20)
			if rng.IntN(2) == 0 {
				rw, rh = 1, 1
			}
			d := xproto.Drawable(p.root)
			if rng.IntN(3) == 0 {
				d, x, y = xproto.Drawable(win), x%300, y%200
			}
			p.fillAsync(d, rng.Uint32()&0xffffff, xrect(x, y, rw, rh))
		}
		p.sync()
		want := p.grab(0, 0, w, h)
		img := shot(t, c, desktop.ScreenshotOptions{})
		if d := firstDiff(decodeImage(t, img), want, w); d != "" {
			t.Fatalf("frame %d (cached %v): screenshot vs GetImage: %s", i, img.Cached, d)
		}
		reused += pngStats(c, desktop.ScreenshotOptions{}).Reused
		r := desktop.Rect{X: 100, Y: 150, Width: 400, Height: 300}
		img = shot(t, c, desktop.ScreenshotOptions{Region: &r})
		wantR := p.grab(r.X, r.Y, r.Width, r.Height)
		if d := firstDiff(decodeImage(t, img), wantR, r.Width); d != "" {
			t.Fatalf("frame %d: region vs GetImage: %s", i, d)
		}
		img = shot(t, c, scaledOpts)
		ref := newScaler(w, h, img.Width, img.Height).scale(pngenc.Frame{Pix: want, Stride: w * 4, Width: w, Height: h}, nil)
		if d := firstDiff(decodeImage(t, img), ref.Pix, img.Width); d != "" {
			t.Fatalf("frame %d: scaled vs scaled GetImage: %s", i, d)
		}
	}
	if reused == 0 {
		t.Errorf("no strip was ever reused: the strip cache was not exercised")
	}
}

// pngStats reports what the PNG encoder of the screenshot shape opts did
// last.
func pngStats(c *Conn, opts desktop.ScreenshotOptions) pngenc.Stats {
	c.cap.mu.Lock()
	defer c.cap.mu.Unlock()
	k := keyOf(opts, c.cap.width, c.cap.height)
	for _, e := range c.cap.entries {
		if e.key == k && e.png != nil {
			return e.png.Stats()
		}
	}
	return pngenc.Stats{}
}

func TestScreenshotFallbackMatchesShm(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	paintPattern(p, w, h)
	viaShm := shot(t, c, desktop.ScreenshotOptions{Format: "jpeg"})
	c.cap.mu.Lock()
	usedShm := c.cap.seg != nil
	c.cap.mu.Unlock()
	if !usedShm {
		t.Fatalf("first capture did not use MIT-SHM")
	}
	c.setSHM(false)
	p.fill(xproto.Drawable(p.root), 0x0000ff, xrect(0, 0, 1, 1)) // same colour: a change without a difference
	viaSocket := shot(t, c, desktop.ScreenshotOptions{Format: "jpeg"})
	c.cap.mu.Lock()
	usedShm = c.cap.seg != nil
	c.cap.mu.Unlock()
	if usedShm || viaSocket.Cached {
		t.Fatalf("after setSHM(false): segment attached %v, cached %v; want neither", usedShm, viaSocket.Cached)
	}
	if !bytes.Equal(viaShm.Data, viaSocket.Data) {
		t.Errorf("JPEG over the socket differs from JPEG over MIT-SHM")
	}
	if d := firstDiff(decodeImage(t, shot(t, c, desktop.ScreenshotOptions{Width: 300})), decodeImage(t, shot(t, c, desktop.ScreenshotOptions{Width: 300})), 300); d != "" {
		t.Errorf("socket screenshots differ: %s", d)
	}
	full := decodeImage(t, shot(t, c, desktop.ScreenshotOptions{}))
	if d := firstDiff(full, p.grab(0, 0, w, h), w); d != "" {
		t.Errorf("socket screenshot vs GetImage: %s", d)
	}
}

func TestBlank(t *testing.T) {
	c, p := setupCapture(t, 320, 240)
	ctx := context.Background()
	p.background(0x123456)
	if blank, err := c.Blank(ctx); err != nil || !blank {
		t.Fatalf("Blank on a plain background = %v, %v; want true", blank, err)
	}
	p.fill(xproto.Drawable(p.root), 0x123457, xrect(319, 239, 1, 1))
	if blank, err := c.Blank(ctx); err != nil || blank {
		t.Fatalf("Blank with one pixel off = %v, %v; want false", blank, err)
	}
}

func TestScreenshotCursor(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	p.background(0x808080)
	p.warp(200, 150)
	withOpts := desktop.ScreenshotOptions{Cursor: true}
	plain := decodeImage(t, shot(t, c, desktop.ScreenshotOptions{}))
	with := decodeImage(t, shot(t, c, withOpts))
	near := func(pix []byte, cx, cy int) int {
		n := 0
		for y := max(cy-20, 0); y < min(cy+20, h); y++ {
			for x := max(cx-20, 0); x < min(cx+20, w); x++ {
				if pixelAt(pix, w, x, y) != 0x808080 {
					n++
				}
			}
		}
		return n
	}
	if n := near(plain, 200, 150); n != 0 {
		t.Errorf("without cursor: %d pixels near the pointer differ from the background, want 0", n)
	}
	if n := near(with, 200, 150); n < 10 {
		t.Errorf("with cursor: %d pixels near the pointer differ from the background, want a pointer", n)
	}
	if d := firstDiff(with[:100*w*4], plain[:100*w*4], w); d != "" {
		t.Errorf("with cursor, rows far above the pointer changed: %s", d)
	}
	if again := shot(t, c, withOpts); !again.Cached {
		t.Errorf("pointer did not move: want cached")
	}
	p.warp(400, 300)
	// Moving the pointer draws nothing on the screen itself.
	if again := shot(t, c, desktop.ScreenshotOptions{}); !again.Cached {
		t.Errorf("without cursor, after the pointer moved: not cached, want cached")
	}
	moved := shot(t, c, withOpts)
	if moved.Cached {
		t.Fatalf("pointer moved: got a cached screenshot")
	}
	pix := decodeImage(t, moved)
	if n := near(pix, 200, 150); n != 0 {
		t.Errorf("after the move, %d pixels at the old pointer position still differ from the background", n)
	}
	if n := near(pix, 400, 300); n < 10 {
		t.Errorf("after the move, %d pixels near the new position differ, want a pointer", n)
	}
	// The pointer drawn into one screenshot never leaks into another
	// without it, whether the rows it covered changed or not.
	for _, r := range []xproto.Rectangle{xrect(10, 300, 1, 1), xrect(0, 0, 1, 1)} {
		p.fill(xproto.Drawable(p.root), 0x818181, r)
		img := shot(t, c, desktop.ScreenshotOptions{})
		if d := firstDiff(decodeImage(t, img), p.grab(0, 0, w, h), w); d != "" {
			t.Errorf("without cursor after drawing at (%d,%d): %s", r.X, r.Y, d)
		}
		if n := near(decodeImage(t, shot(t, c, withOpts)), 400, 300); n < 10 {
			t.Errorf("with cursor after drawing at (%d,%d): %d pixels near the pointer differ, want a pointer", r.X, r.Y, n)
		}
	}
}

func TestCaptureDepth16(t *testing.T) {
	s := xvfbtest.Start(t, xvfbtest.Options{Width: 320, Height: 240, Depth: 16})
	c := dialCapture(t, s.Display, Config{})
	_, err := c.Screenshot(context.Background(), desktop.ScreenshotOptions{})
	if err == nil || !errors.Is(err, desktop.ErrUnavailable) || !strings.Contains(err.Error(), "depth 16") {
		t.Fatalf("Screenshot on depth 16 = %v, want an unavailable error naming depth 16", err)
	}
	if _, err := c.Blank(context.Background()); !errors.Is(err, desktop.ErrUnavailable) {
		t.Fatalf("Blank on depth 16 = %v, want unavailable", err)
	}
}

// shmSegments lists the SysV segments created by this process: id and
// number of attachments, from /proc/sysvipc/shm.
func shmSegments(t testing.TB) map[int]int {
	t.Helper()
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Skipf("no /proc/sysvipc/shm: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	// key shmid perms size cpid lpid nattch uid gid cuid cgid ...
	segs := map[int]int{}
	pid := strconv.Itoa(os.Getpid())
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 7 || f[4] != pid {
			continue
		}
		id, _ := strconv.Atoi(f[1])
		segs[id], _ = strconv.Atoi(f[6])
	}
	return segs
}

func TestShmNoLeak(t *testing.T) {
	s := xvfbtest.Start(t, xvfbtest.Options{Width: 320, Height: 240})
	before := shmSegments(t)
	for i := range 50 {
		c := dialCapture(t, s.Display, Config{})
		shot(t, c, desktop.ScreenshotOptions{Format: "jpeg"})
		if i == 0 {
			c.cap.mu.Lock()
			attached := c.cap.seg != nil
			c.cap.mu.Unlock()
			if !attached {
				t.Fatalf("no MIT-SHM segment attached after a screenshot")
			}
			if n := len(shmSegments(t)); n != len(before)+1 {
				t.Errorf("while open: %d segments of ours, want %d", n, len(before)+1)
			}
		}
		c.Close()
	}
	after := shmSegments(t)
	if len(after) != len(before) {
		t.Errorf("after 50 Dial+Screenshot+Close: segments of ours %v, before %v", after, before)
	}
}

func TestShmOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("handing a segment to another uid needs root")
	}
	s := xvfbtest.Start(t, xvfbtest.Options{Width: 320, Height: 240})
	c := dialCapture(t, s.Display, Config{ShmOwner: 65534})
	p := newPainter(t, s.Display)
	paintPattern(p, 320, 240)
	img := shot(t, c, desktop.ScreenshotOptions{})
	c.cap.mu.Lock()
	attached := c.cap.seg != nil
	c.cap.mu.Unlock()
	if !attached {
		t.Fatalf("segment handed to uid 65534 was not attached")
	}
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Skipf("no /proc/sysvipc/shm: %v", err)
	}
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 7 && f[4] == strconv.Itoa(os.Getpid()) {
			found = true
			if f[7] != "65534" {
				t.Errorf("segment uid %s, want 65534", f[7])
			}
		}
	}
	if !found {
		t.Errorf("no segment of ours in /proc/sysvipc/shm")
	}
	if d := firstDiff(decodeImage(t, img), p.grab(0, 0, 320, 240), 320); d != "" {
		t.Errorf("screenshot vs GetImage: %s", d)
	}
}

// TestScreenshotAfterResize makes the capture state believe the screen had
// another size, as after a RANDR change (Xvfb cannot resize itself), and
// checks that the next screenshot starts over at the real size.
func TestScreenshotAfterResize(t *testing.T) {
	const w, h = 640, 480
	c, p := setupCapture(t, w, h)
	paintPattern(p, w, h)
	shot(t, c, desktop.ScreenshotOptions{})
	shot(t, c, desktop.ScreenshotOptions{Width: 320})
	c.cap.mu.Lock()
	if err := c.prepare(500, 300); err != nil {
		t.Fatal(err)
	}
	c.cap.mu.Unlock()
	if ok, err := c.Blank(context.Background()); err != nil || ok {
		t.Fatalf("Blank = %v, %v; want false", ok, err)
	}
	c.cap.mu.Lock()
	if err := c.prepare(500, 300); err != nil {
		t.Fatal(err)
	}
	c.cap.mu.Unlock()
	img := shot(t, c, desktop.ScreenshotOptions{})
	if img.Cached || img.Width != w || img.Height != h {
		t.Fatalf("got %dx%d cached=%v, want %dx%d not cached", img.Width, img.Height, img.Cached, w, h)
	}
	if d := firstDiff(decodeImage(t, img), p.grab(0, 0, w, h), w); d != "" {
		t.Errorf("screenshot vs GetImage: %s", d)
	}
	if img := shot(t, c, desktop.ScreenshotOptions{}); !img.Cached {
		t.Errorf("second screenshot after the resize not cached")
	}
	c.cap.mu.Lock()
	segLen := len(c.cap.seg.mem)
	c.cap.mu.Unlock()
	if segLen != w*h*4 {
		t.Errorf("segment of %d bytes, want %d", segLen, w*h*4)
	}
}

func TestScaleFilter(t *testing.T) {
	for _, tc := range []struct{ sw, sh, dw, dh int }{
		{1024, 768, 512, 384}, {1920, 1080, 1366, 768}, {1024, 768, 341, 256}, {7, 5, 3, 2},
		{640, 480, 641, 481}, {100, 100, 1000, 30}, {1, 1, 5, 5}, {5, 5, 1, 1},
	} {
		t.Run(fmt.Sprintf("%dx%d to %dx%d", tc.sw, tc.sh, tc.dw, tc.dh), func(t *testing.T) {
			s := newScaler(tc.sw, tc.sh, tc.dw, tc.dh)
			for _, f := range []axisFilter{s.h, s.v} {
				for i := range f.start {
					sum := int32(0)
					for _, w := range f.w[i*f.taps : i*f.taps+int(f.count[i])] {
						if w < 0 {
							t.Fatalf("output %d: negative weight %d", i, w)
						}
						sum += w
					}
					if sum != 1<<weightBits {
						t.Fatalf("output %d: weights sum to %d, want %d", i, sum, 1<<weightBits)
					}
				}
			}
			// A flat colour stays exactly that colour at any scale.
			src := make([]byte, tc.sw*tc.sh*4)
			for i := 0; i < len(src); i += 4 {
				src[i], src[i+1], src[i+2] = 0x12, 0xab, 0xff
			}
			out := s.scale(pngenc.Frame{Pix: src, Stride: tc.sw * 4, Width: tc.sw, Height: tc.sh}, nil)
			if out.Width != tc.dw || out.Height != tc.dh || len(out.Pix) != tc.dw*tc.dh*4 {
				t.Fatalf("got %dx%d with %d bytes", out.Width, out.Height, len(out.Pix))
			}
			for i := 0; i < len(out.Pix); i += 4 {
				if out.Pix[i] != 0x12 || out.Pix[i+1] != 0xab || out.Pix[i+2] != 0xff {
					t.Fatalf("pixel %d = %x, want 12 ab ff", i/4, out.Pix[i:i+3])
				}
			}
			if s0, s1 := s.sourceRows(0, tc.dh); s0 != 0 || s1 != tc.sh {
				t.Errorf("sourceRows(0, %d) = %d, %d; want 0, %d", tc.dh, s0, s1, tc.sh)
			}
		})
	}
}

func TestScaleOutputSize(t *testing.T) {
	for _, tc := range []struct{ w, h, ow, oh, wantW, wantH int }{
		{1024, 768, 0, 0, 1024, 768},
		{1024, 768, 512, 0, 512, 384},
		{1024, 768, 0, 300, 400, 300},
		{1920, 1080, 1366, 0, 1366, 768},
		{1920, 1080, 100, 100, 100, 100},
		{1000, 1, 10, 0, 10, 1},
		{1, 1000, 0, 10, 1, 10},
	} {
		if w, h := outputSize(tc.w, tc.h, tc.ow, tc.oh); w != tc.wantW || h != tc.wantH {
			t.Errorf("outputSize(%d, %d, %d, %d) = %dx%d, want %dx%d", tc.w, tc.h, tc.ow, tc.oh, w, h, tc.wantW, tc.wantH)
		}
	}
}
