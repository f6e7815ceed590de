package x11

import (
	"bytes"
	"image"
	"image/jpeg"

	"github.com/cubicle-dev/cubicle/internal/pngenc"
)

// jpegBuffers is the reused RGBA picture a JPEG is encoded from.
type jpegBuffers struct {
	rgba *image.RGBA
}

// encode returns f as a JPEG of the given quality, in a new slice.
func (j *jpegBuffers) encode(f pngenc.Frame, quality int) ([]byte, error) {
	if j.rgba == nil || j.rgba.Rect.Dx() != f.Width || j.rgba.Rect.Dy() != f.Height {
		j.rgba = image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	}
	bgrxToRGBA(j.rgba.Pix, j.rgba.Stride, f)
	// About 1 byte per pixel at quality 80 on desktop content.
	buf := bytes.NewBuffer(make([]byte, 0, f.Width*f.Height/2))
	if err := jpeg.Encode(buf, j.rgba, &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bgrxToRGBA converts f into dst, an opaque RGBA picture of the same size.
func bgrxToRGBA(dst []byte, dstStride int, f pngenc.Frame) {
	for y := range f.Height {
		s := f.Pix[y*f.Stride : y*f.Stride+f.Width*4]
		d := dst[y*dstStride : y*dstStride+f.Width*4]
		for x := 0; x+3 < len(s); x += 4 {
			d[x], d[x+1], d[x+2], d[x+3] = s[x+2], s[x+1], s[x], 0xff
		}
	}
}
