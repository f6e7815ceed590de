package x11

import (
	"github.com/jezek/xgb/xfixes"
)

// cursorMark is where the pointer image lies on the screen and which image
// it is: when it differs between two screenshots, both places are redrawn.
type cursorMark struct {
	x, y, w, h int
	serial     uint32
}

// markOf is the mark of the pointer p.
func markOf(p *xfixes.GetCursorImageReply) cursorMark {
	return cursorMark{
		x:      int(p.X) - int(p.Xhot),
		y:      int(p.Y) - int(p.Yhot),
		w:      int(p.Width),
		h:      int(p.Height),
		serial: p.CursorSerial,
	}
}

// drawCursor blends the pointer image into the BGRX frame of w x h. The
// image is ARGB with premultiplied alpha, so each channel is
// src + dst*(255-alpha)/255.
func drawCursor(pix []byte, stride, w, h int, p *xfixes.GetCursorImageReply) {
	m := markOf(p)
	if len(p.CursorImage) < m.w*m.h {
		return
	}
	x0, y0 := max(m.x, 0), max(m.y, 0)
	x1, y1 := min(m.x+m.w, w), min(m.y+m.h, h)
	for y := y0; y < y1; y++ {
		src := p.CursorImage[(y-m.y)*m.w:]
		row := pix[y*stride:]
		for x := x0; x < x1; x++ {
			s := src[x-m.x]
			a := s >> 24
			if a == 0 {
				continue
			}
			d := row[x*4 : x*4+4 : x*4+4]
			if a == 255 {
				d[0], d[1], d[2] = byte(s), byte(s>>8), byte(s>>16)
				continue
			}
			k := 255 - a
			d[0] = blend(byte(s), d[0], k)
			d[1] = blend(byte(s>>8), d[1], k)
			d[2] = blend(byte(s>>16), d[2], k)
		}
	}
}

// blend is s + d*k/255, rounded and saturated.
func blend(s, d byte, k uint32) byte {
	t := uint32(d)*k + 128
	v := uint32(s) + (t+t>>8)>>8
	if v > 255 {
		v = 255
	}
	return byte(v)
}
