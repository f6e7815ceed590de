package x11

import (
	"math"

	"github.com/cubicle-dev/cubicle/internal/pngenc"
)

// Fixed-point precision of the filter weights: they sum to 1<<weightBits.
const weightBits = 8

// axisFilter maps the pixels of one axis of n source pixels onto m output
// pixels: output i is the weighted sum of source pixels start[i] to
// start[i]+count[i]-1, with weights w[i*taps:].
type axisFilter struct {
	start, count []int32
	w            []int32
	taps         int
}

// newAxisFilter builds the filter for n -> m. Shrinking averages the area
// each output pixel covers (a box filter with fractional edges), which
// keeps thin lines and text legible instead of dropping them; growing
// interpolates linearly between the two nearest source pixels.
func newAxisFilter(n, m int) axisFilter {
	f := axisFilter{start: make([]int32, m), count: make([]int32, m)}
	if m < n {
		s := float64(n) / float64(m)
		f.taps = int(math.Ceil(s)) + 1
		f.w = make([]int32, m*f.taps)
		for i := range m {
			a, b := float64(i)*s, float64(i+1)*s
			j0, j1 := int(math.Floor(a)), min(int(math.Ceil(b)), n)
			f.start[i] = int32(j0)
			f.count[i] = int32(j1 - j0)
			ws := f.w[i*f.taps : i*f.taps+j1-j0]
			for j := j0; j < j1; j++ {
				cover := math.Min(b, float64(j+1)) - math.Max(a, float64(j))
				ws[j-j0] = int32(math.Round(cover / s * (1 << weightBits)))
			}
			normalize(ws)
		}
		return f
	}
	f.taps = 2
	f.w = make([]int32, m*2)
	for i := range m {
		x := (float64(i)+0.5)*float64(n)/float64(m) - 0.5
		x = math.Max(0, math.Min(x, float64(n-1)))
		j := int(x)
		frac := x - float64(j)
		f.start[i] = int32(j)
		if j+1 >= n || frac == 0 {
			f.count[i] = 1
			f.w[i*2] = 1 << weightBits
			continue
		}
		f.count[i] = 2
		w1 := int32(math.Round(frac * (1 << weightBits)))
		f.w[i*2], f.w[i*2+1] = 1<<weightBits-w1, w1
	}
	return f
}

// normalize makes ws sum to exactly 1<<weightBits, putting the rounding
// error on the largest weight.
func normalize(ws []int32) {
	sum, big := int32(0), 0
	for i, w := range ws {
		sum += w
		if w > ws[big] {
			big = i
		}
	}
	ws[big] += 1<<weightBits - sum
}

// scaler resizes BGRX frames of one size to another, into a buffer it
// keeps, so output rows whose source rows did not change are kept as they
// are.
//
// Both passes work on whole pixels at once: a pixel's three channels are
// spread into 16-bit lanes of a uint64, so one multiplication weighs all
// three. With 8-bit weights that sum to 256 a lane holds at most 255*256,
// and a flat colour comes out exactly as it went in.
type scaler struct {
	sw, sh, dw, dh int
	h, v           axisFilter
	dst            []byte
	acc            []uint64 // one row after the vertical pass, spread
}

func newScaler(sw, sh, dw, dh int) *scaler {
	return &scaler{
		sw: sw, sh: sh, dw: dw, dh: dh,
		h:   newAxisFilter(sw, dw),
		v:   newAxisFilter(sh, dh),
		dst: make([]byte, dw*dh*4),
		acc: make([]uint64, sw),
	}
}

// sourceRows is the range of source rows output rows [y0, y1) are made of.
func (s *scaler) sourceRows(y0, y1 int) (int, int) {
	if y0 >= y1 {
		return 0, 0
	}
	return int(s.v.start[y0]), int(s.v.start[y1-1] + s.v.count[y1-1])
}

// scale resizes src into the scaler's buffer and returns it. With dirty
// set, only output rows whose source rows it reports as changed are
// computed again.
func (s *scaler) scale(src pngenc.Frame, dirty func(y0, y1 int) bool) pngenc.Frame {
	for oy := range s.dh {
		if dirty != nil {
			if s0, s1 := s.sourceRows(oy, oy+1); !dirty(s0, s1) {
				continue
			}
		}
		s.vertical(src, oy)
		s.horizontal(s.dst[oy*s.dw*4 : (oy+1)*s.dw*4])
	}
	return pngenc.Frame{Pix: s.dst, Stride: s.dw * 4, Width: s.dw, Height: s.dh}
}

const (
	laneMask = 0x0000_00ff_00ff_00ff // the low byte of each channel lane
	laneHalf = 0x0000_0080_0080_0080 // one half in each lane, for rounding
)

// vertical fills acc with output row oy filtered down the columns, each
// lane rounded back to 8 bits.
func (s *scaler) vertical(src pngenc.Frame, oy int) {
	acc := s.acc[:s.sw]
	y0, n := int(s.v.start[oy]), int(s.v.count[oy])
	ws := s.v.w[oy*s.v.taps : oy*s.v.taps+n]
	for k, w := range ws {
		row := src.Pix[(y0+k)*src.Stride:]
		row = row[:len(acc)*4]
		uw := uint64(w)
		if k == 0 {
			for x := range acc {
				p := row[x*4 : x*4+3 : x*4+3]
				acc[x] = uw * (uint64(p[0]) | uint64(p[1])<<16 | uint64(p[2])<<32)
			}
			continue
		}
		for x := range acc {
			p := row[x*4 : x*4+3 : x*4+3]
			acc[x] += uw * (uint64(p[0]) | uint64(p[1])<<16 | uint64(p[2])<<32)
		}
	}
	for x, a := range acc {
		acc[x] = (a + laneHalf) >> weightBits & laneMask
	}
}

// horizontal filters acc along the row into out.
func (s *scaler) horizontal(out []byte) {
	acc := s.acc
	taps := s.h.taps
	out = out[:s.dw*4]
	ws := s.h.w[:s.dw*taps]
	start := s.h.start[:s.dw]
	count := s.h.count[:s.dw]
	for ox := range start {
		x0, n := int(start[ox]), int(count[ox])
		w := ws[ox*taps : ox*taps+taps]
		var v uint64
		if n == 2 {
			a := acc[x0 : x0+2 : x0+2]
			v = uint64(w[0])*a[0] + uint64(w[1])*a[1]
		} else {
			a := acc[x0 : x0+n]
			for k, ak := range a {
				v += uint64(w[k]) * ak
			}
		}
		v = (v + laneHalf) >> weightBits
		o := out[ox*4 : ox*4+4 : ox*4+4]
		o[0], o[1], o[2], o[3] = byte(v), byte(v>>16), byte(v>>32), 0
	}
}
