package clienttest

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

func (a *Agent) handleScreenshot(w http.ResponseWriter, r *http.Request) {
	o, err := screenshotOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	img, err := a.shoot(o)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/"+img.Format)
	w.Header().Set("X-Image-Width", strconv.Itoa(img.Width))
	w.Header().Set("X-Image-Height", strconv.Itoa(img.Height))
	w.Header().Set("X-Cached", strconv.FormatBool(img.Cached))
	w.Header().Set("Content-Length", strconv.Itoa(len(img.Data)))
	_, _ = w.Write(img.Data)
}

// screenshotOptions reads the query of GET /v1/screenshot.
func screenshotOptions(r *http.Request) (desktop.ScreenshotOptions, error) {
	var o desktop.ScreenshotOptions
	if err := checkQuery(r, "format", "quality", "region", "width", "height", "cursor"); err != nil {
		return o, err
	}
	q := r.URL.Query()
	o.Format = q.Get("format")
	ints := []struct {
		name string
		dst  *int
	}{{"quality", &o.Quality}, {"width", &o.Width}, {"height", &o.Height}}
	for _, p := range ints {
		if s := q.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return o, badParam(p.name, "%s must be an integer, got %q", p.name, s)
			}
			*p.dst = n
		}
	}
	if s := q.Get("region"); s != "" {
		parts := strings.Split(s, ",")
		var v [4]int
		if len(parts) != 4 {
			return o, badParam("region", "region must be x,y,width,height, got %q", s)
		}
		for i, p := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return o, badParam("region", "region must be x,y,width,height, got %q", s)
			}
			v[i] = n
		}
		o.Region = &desktop.Rect{X: v[0], Y: v[1], Width: v[2], Height: v[3]}
	}
	if s := q.Get("cursor"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return o, badParam("cursor", "cursor must be true or false, got %q", s)
		}
		o.Cursor = b
	}
	return o, nil
}

func badParam(field, format string, args ...any) *desktop.Error {
	e := desktop.Errorf(desktop.CodeInvalid, format, args...)
	e.Field = field
	return e
}

// shoot renders the imaginary screen as o asks: a plain picture of the right
// size and format. It is cached when nothing happened since the last
// screenshot with the same options.
func (a *Agent) shoot(o desktop.ScreenshotOptions) (desktop.Image, error) {
	a.mu.Lock()
	screen := a.screen
	a.mu.Unlock()
	if err := o.Validate(screen); err != nil {
		return desktop.Image{}, err
	}
	if o.Format == "" {
		o.Format = "png"
	}
	size := screen
	if o.Region != nil {
		size = desktop.Size{Width: o.Region.Width, Height: o.Region.Height}
	}
	switch {
	case o.Width > 0 && o.Height > 0:
		size = desktop.Size{Width: o.Width, Height: o.Height}
	case o.Width > 0:
		size = desktop.Size{Width: o.Width, Height: max(1, size.Height*o.Width/size.Width)}
	case o.Height > 0:
		size = desktop.Size{Width: max(1, size.Width*o.Height/size.Height), Height: o.Height}
	}
	pic := image.NewRGBA(image.Rect(0, 0, size.Width, size.Height))
	fill := color.RGBA{R: 0x30, G: 0x50, B: 0x90, A: 0xff}
	for i := 0; i < len(pic.Pix); i += 4 {
		pic.Pix[i], pic.Pix[i+1], pic.Pix[i+2], pic.Pix[i+3] = fill.R, fill.G, fill.B, fill.A
	}
	var buf bytes.Buffer
	var err error
	if o.Format == "jpeg" {
		q := o.Quality
		if q == 0 {
			q = 80
		}
		err = jpeg.Encode(&buf, pic, &jpeg.Options{Quality: q})
	} else {
		err = png.Encode(&buf, pic)
	}
	if err != nil {
		return desktop.Image{}, desktop.Errorf(desktop.CodeInternal, "encode the screenshot: %v", err)
	}
	key := strings.Join([]string{o.Format, strconv.Itoa(o.Quality), strconv.Itoa(size.Width), strconv.Itoa(size.Height),
		strconv.FormatBool(o.Cursor), regionKey(o.Region)}, "/")
	a.mu.Lock()
	cached := !a.drawn && a.lastShot == key
	a.drawn, a.lastShot = false, key
	a.mu.Unlock()
	return desktop.Image{Format: o.Format, Width: size.Width, Height: size.Height, Data: buf.Bytes(), Cached: cached}, nil
}

func regionKey(r *desktop.Rect) string {
	if r == nil {
		return ""
	}
	return strconv.Itoa(r.X) + "," + strconv.Itoa(r.Y) + "," + strconv.Itoa(r.Width) + "," + strconv.Itoa(r.Height)
}
