package pngenc

import (
	"math/rand/v2"
	"testing"
)

func TestSubBytesAndAbsBytes3(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100000 {
		a, b := rng.Uint32(), rng.Uint32()
		if rng.IntN(4) == 0 {
			b = a ^ 1<<rng.IntN(32)
		}
		a2, b2 := rng.Uint32(), rng.Uint32()
		d64 := subBytes64(uint64(a2)<<32|uint64(a), uint64(b2)<<32|uint64(b))
		if got, want := d64, uint64(subBytes(a2, b2))<<32|uint64(subBytes(a, b)); got != want {
			t.Fatalf("subBytes64: got %016x, want %016x", got, want)
		}
		d := subBytes(a, b)
		var sum uint32
		for i := 0; i < 32; i += 8 {
			want := byte(a>>i) - byte(b>>i)
			if got := byte(d >> i); got != want {
				t.Fatalf("subBytes(%08x, %08x) byte %d: got %02x, want %02x", a, b, i/8, got, want)
			}
			if i < 24 {
				sum += uint32(max(int8(want), -int8(want)) & 0x7f)
				if int8(want) == -128 {
					sum += 128
				}
			}
		}
		if got := absBytes3(d); got != sum {
			t.Fatalf("absBytes3(%08x): got %d, want %d", d, got, sum)
		}
	}
}

func TestRowNoneChoosesFlatRows(t *testing.T) {
	// rowNone samples pixel 2i+1 against pixel 2i; a row here is given as
	// those pairs.
	pairs := func(ps ...[2]uint32) []byte {
		b := make([]byte, 8*len(ps))
		for i, p := range ps {
			for j, v := range p {
				o := 8*i + 4*j
				b[o], b[o+1], b[o+2], b[o+3] = byte(v), byte(v>>8), byte(v>>16), byte(o*41)
			}
		}
		return b
	}
	same := func(v uint32, n int) [][2]uint32 {
		ps := make([][2]uint32, n)
		for i := range ps {
			ps[i] = [2]uint32{v, v}
		}
		return ps
	}
	cat := func(ps ...[][2]uint32) []byte {
		var all [][2]uint32
		for _, p := range ps {
			all = append(all, p...)
		}
		return pairs(all...)
	}
	tests := []struct {
		name string
		row  []byte
		want bool
	}{
		{"one pixel", []byte{1, 2, 3, 4}, true},
		{"all equal, X bytes differ", cat(same(7, 8)), true},
		{"half the pairs equal, rest big steps", cat(same(0, 4), [][2]uint32{{0, 0xffffff}, {0xffffff, 0}, {0, 0x00ff00}, {0, 0x800000}}), true},
		{"fewer than half equal", cat(same(0, 3), [][2]uint32{{0, 0xffffff}, {0xffffff, 0}, {0, 0x00ff00}, {0, 0x800000}, {0, 0x80}}), false},
		{"gradient", pairs([2]uint32{0, 1}, [2]uint32{2, 3}, [2]uint32{4, 5}, [2]uint32{6, 7}), false},
		{"one small step in eight pairs", cat(same(0x101010, 7), [][2]uint32{{0x101010, 0x101011}}), false},
		{"one small step in nine pairs", cat(same(0x101010, 8), [][2]uint32{{0x101010, 0x101011}}), true},
		{"steps across a multiple of 8 are big", cat(same(9, 4), [][2]uint32{{0x070707, 0x080808}, {0x080808, 0x070707}, {0x0f, 0x10}}), true},
		{"black next to white is a big step", cat(same(0, 4), [][2]uint32{{0, 0xffffff}, {0xffffff, 0}, {0xfefefe, 0x010101}}), true},
		{"one channel off by a little", cat(same(0x10, 6), [][2]uint32{{0x101010, 0x101210}}), false},
		{"odd width, the last pixel is not sampled", append(cat(same(5, 2)), 0xff, 0xff, 0xff, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := len(tt.row) / 4
			d := make([]byte, 3*w)
			if got := rowNone(d, tt.row, w); got != tt.want {
				t.Errorf("rowNone flat: got %v, want %v", got, tt.want)
			}
		})
	}
}

// Every filter must be exactly what a PNG decoder undoes.
func TestFilterRowsUnfilter(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, w := range []int{1, 2, 3, 4, 5, 7, 8, 9, 64, 67} {
		up, cur := make([]byte, 4*w), make([]byte, 4*w)
		for i := range cur {
			up[i], cur[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		want := make([]byte, 3*w)
		for x := range w {
			want[3*x], want[3*x+1], want[3*x+2] = cur[4*x+2], cur[4*x+1], cur[4*x]
		}
		d := make([]byte, 3*w)
		rowNone(d, cur, w)
		if string(d) != string(want) {
			t.Errorf("width %d: rowNone: got %x, want %x", w, d, want)
		}
		rowSub(d, cur, w)
		for i := range d {
			if i >= 3 {
				d[i] += d[i-3]
			}
		}
		if string(d) != string(want) {
			t.Errorf("width %d: rowSub undone: got %x, want %x", w, d, want)
		}
		rowUp(d, cur, up, w)
		for x := range w {
			d[3*x] += up[4*x+2]
			d[3*x+1] += up[4*x+1]
			d[3*x+2] += up[4*x]
		}
		if string(d) != string(want) {
			t.Errorf("width %d: rowUp undone: got %x, want %x", w, d, want)
		}
	}
}
