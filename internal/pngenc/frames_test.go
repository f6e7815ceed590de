package pngenc

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Test frames. The captures in testdata/ are real screens, saved with
// `import -window root` from Xvfb running an XFCE session (default
// wallpaper, panels): desktop-*.png with xfce4-terminal showing a coloured
// `ls -la /usr/bin`, firefox-1024x768.png with Firefox ESR showing a local
// page of text, a table, a photo and gradients.

// newFrame returns a w x h frame with stride 4*w+pad whose X bytes are
// garbage, so that an encoder that reads them shows up in the output.
func newFrame(w, h, pad int) Frame {
	f := Frame{Width: w, Height: h, Stride: 4*w + pad}
	f.Pix = make([]byte, f.Stride*h)
	for i := range f.Pix {
		f.Pix[i] = byte(i*7 + 3)
	}
	return f
}

// set stores an RGB colour at (x, y).
func (f *Frame) set(x, y int, r, g, b byte) {
	o := y*f.Stride + 4*x
	f.Pix[o], f.Pix[o+1], f.Pix[o+2] = b, g, r
}

// at returns the RGB colour at (x, y).
func (f *Frame) at(x, y int) (r, g, b byte) {
	o := y*f.Stride + 4*x
	return f.Pix[o+2], f.Pix[o+1], f.Pix[o]
}

func noiseFrame(w, h int, seed uint64) Frame {
	f := newFrame(w, h, 0)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range f.Pix {
		f.Pix[i] = byte(rng.Uint32())
	}
	return f
}

func flatFrame(w, h int, r, g, b byte) Frame {
	f := newFrame(w, h, 0)
	for y := range h {
		for x := range w {
			f.set(x, y, r, g, b)
		}
	}
	return f
}

// gradientFrame has a smooth diagonal gradient in each channel, the case
// where Sub and Up filters matter.
func gradientFrame(w, h int) Frame {
	f := newFrame(w, h, 0)
	for y := range h {
		for x := range w {
			f.set(x, y, byte(x*255/max(w-1, 1)), byte(y*255/max(h-1, 1)), byte((x+y)/3))
		}
	}
	return f
}

// textFrame imitates a desktop: a light window with a title bar and rows of
// glyph-like marks in a few colours over a dark, slightly noisy background.
func textFrame(w, h int, seed uint64) Frame {
	f := newFrame(w, h, 0)
	rng := rand.New(rand.NewPCG(seed, 2))
	for y := range h {
		for x := range w {
			n := byte(rng.IntN(3))
			f.set(x, y, 20+n, 30+n, 50+n)
		}
	}
	x0, y0, x1, y1 := w/10, h/10, w*9/10, h*9/10
	colours := [][3]byte{{0, 0, 0}, {40, 160, 40}, {30, 90, 200}, {180, 30, 30}}
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			switch {
			case y < y0+24:
				f.set(x, y, 230, 230, 235)
			case (y-y0-24)%16 < 12 && (x-x0)%9 < 7:
				// A glyph cell: a pattern that depends on the character.
				ch := (x-x0)/9*31 + (y-y0-24)/16*17
				if (ch>>uint((x-x0)%7))&1 == 1 && (y-y0)%3 != 0 {
					c := colours[ch%len(colours)]
					f.set(x, y, c[0], c[1], c[2])
					continue
				}
				f.set(x, y, 255, 255, 255)
			default:
				f.set(x, y, 255, 255, 255)
			}
		}
	}
	return f
}

// repeatFrame repeats each row of f n times: runs of equal rows, some
// unfiltered (text), some filtered (noise, gradient).
func repeatFrame(f Frame, n int) Frame {
	r := newFrame(f.Width, f.Height*n, 4)
	for y := range r.Height {
		copy(r.Pix[y*r.Stride:], f.Pix[y/n*f.Stride:y/n*f.Stride+4*f.Width])
	}
	return r
}

// subFrame returns the frame of the w x h rectangle at (x, y) of big, sharing
// its pixels.
func subFrame(big Frame, x, y, w, h int) Frame {
	off := y*big.Stride + 4*x
	end := off + (h-1)*big.Stride + 4*w
	return Frame{Pix: big.Pix[off:end], Stride: big.Stride, Width: w, Height: h}
}

// loadFrame reads a PNG from testdata/ into a frame.
func loadFrame(tb testing.TB, name string) Frame {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("read test frame: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("decode %s: %v", name, err)
	}
	r := img.Bounds()
	f := newFrame(r.Dx(), r.Dy(), 0)
	rgba, ok := img.(*image.RGBA)
	for y := range f.Height {
		for x := range f.Width {
			if ok {
				p := rgba.Pix[rgba.PixOffset(r.Min.X+x, r.Min.Y+y):]
				f.set(x, y, p[0], p[1], p[2])
				continue
			}
			cr, cg, cb, _ := img.At(r.Min.X+x, r.Min.Y+y).RGBA()
			f.set(x, y, byte(cr>>8), byte(cg>>8), byte(cb>>8))
		}
	}
	return f
}

// toRGBA converts f to an image.RGBA, as a caller of image/png must.
func toRGBA(dst *image.RGBA, f Frame) {
	for y := range f.Height {
		src := f.Pix[y*f.Stride : y*f.Stride+4*f.Width]
		d := dst.Pix[y*dst.Stride : y*dst.Stride+4*f.Width]
		for i := 0; i < len(src); i += 4 {
			d[i], d[i+1], d[i+2], d[i+3] = src[i+2], src[i+1], src[i], 0xff
		}
	}
}

// decodeDiff decodes a PNG with image/png and compares it with f pixel by
// pixel. It returns "" when they match.
func decodeDiff(data []byte, f Frame) string {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Sprintf("image/png cannot decode it: %v", err)
	}
	if got, want := img.Bounds(), image.Rect(0, 0, f.Width, f.Height); got != want {
		return fmt.Sprintf("bounds: got %v, want %v", got, want)
	}
	rgba, ok := img.(*image.RGBA)
	if !ok {
		return fmt.Sprintf("decoded type: got %T, want *image.RGBA (8-bit truecolour)", img)
	}
	bad := 0
	var first string
	for y := range f.Height {
		for x := range f.Width {
			r, g, b := f.at(x, y)
			p := rgba.Pix[y*rgba.Stride+4*x:]
			if p[0] != r || p[1] != g || p[2] != b || p[3] != 0xff {
				if bad == 0 {
					first = fmt.Sprintf("pixel (%d,%d): got %v, want %v", x, y, p[:4], []byte{r, g, b, 0xff})
				}
				bad++
			}
		}
	}
	if bad > 0 {
		return fmt.Sprintf("%d of %d pixels differ; first %s", bad, f.Width*f.Height, first)
	}
	return ""
}

// clone returns a deep copy of f.
func (f Frame) clone() Frame {
	f.Pix = bytes.Clone(f.Pix)
	return f
}
