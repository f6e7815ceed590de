package pngenc

import "testing"

// FuzzEncode encodes random small frames, then changes some rows and encodes
// again with a dirty func that marks exactly those rows: both PNGs must
// decode to their frames.
func FuzzEncode(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(3), uint8(7), uint8(2), uint8(0), uint8(1))
	f.Add([]byte{0}, uint8(0), uint8(0), uint8(0), uint8(0), uint8(0))
	f.Add([]byte{0xff, 0, 0xff, 0, 0x10, 0x11}, uint8(39), uint8(40), uint8(5), uint8(3), uint8(17))
	f.Add([]byte("a flat-ish text-ish frame with repeats"), uint8(33), uint8(21), uint8(0), uint8(8), uint8(250))
	f.Fuzz(func(t *testing.T, data []byte, w, h, sh, pad, change uint8) {
		if len(data) == 0 {
			data = []byte{0}
		}
		fr := newFrame(1+int(w)%48, 1+int(h)%48, int(pad)%9)
		// Pixels cycle through data, so short inputs give repeats and
		// flat runs, long ones noise.
		i := 0
		for y := range fr.Height {
			for x := range fr.Width {
				fr.set(x, y, data[i%len(data)], data[(i+1)%len(data)], data[(i+2)%len(data)])
				i += 1 + int(data[i%len(data)])%3
			}
		}
		e := New(Options{StripHeight: 1 + int(sh)%20, Workers: 2})
		out, err := e.Encode(nil, fr, nil)
		if err != nil {
			t.Fatalf("Encode %dx%d: %v", fr.Width, fr.Height, err)
		}
		if d := decodeDiff(out, fr); d != "" {
			t.Fatalf("%dx%d stride %d: %s", fr.Width, fr.Height, fr.Stride, d)
		}

		// Change every change-th row (none when change is 0).
		next := fr.clone()
		rows := map[int]bool{}
		if change > 0 {
			for y := int(change) % fr.Height; y < fr.Height; y += int(change) {
				rows[y] = true
				for x := range fr.Width {
					r, g, b := next.at(x, y)
					next.set(x, y, g+1, b, r^0x55)
				}
			}
		}
		dirty := func(y0, y1 int) bool {
			for y := y0; y < y1; y++ {
				if rows[y] {
					return true
				}
			}
			return false
		}
		out, err = e.Encode(out[:0], next, dirty)
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		if d := decodeDiff(out, next); d != "" {
			t.Fatalf("after changing rows %v: %s", rows, d)
		}
	})
}
