package pngenc

import (
	"hash/adler32"
	"testing"
)

func BenchmarkAdler(b *testing.B) {
	p := make([]byte, 3073)
	for i := range p {
		p[i] = byte(i * 13)
	}
	b.Run("adlerUpdate", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for range b.N {
			adlerUpdate(1, p)
		}
	})
	b.Run("hash-adler32", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for range b.N {
			adler32.Checksum(p)
		}
	})
}

func BenchmarkFilter(b *testing.B) {
	f := loadFrame(b, "desktop-1024x768.png")
	n := 3 * f.Width
	d := make([]byte, n+1)
	b.Run("rowNone", func(b *testing.B) {
		b.SetBytes(int64(4 * f.Width * f.Height))
		for range b.N {
			for y := range f.Height {
				rowNone(d[1:], f.Pix[y*f.Stride:], f.Width)
			}
		}
	})
	b.Run("rowSub", func(b *testing.B) {
		b.SetBytes(int64(4 * f.Width * f.Height))
		for range b.N {
			for y := range f.Height {
				rowSub(d[1:], f.Pix[y*f.Stride:], f.Width)
			}
		}
	})
	b.Run("filterRow", func(b *testing.B) {
		b.SetBytes(int64(4 * f.Width * f.Height))
		for range b.N {
			for y := 1; y < f.Height; y++ {
				filterRow(d, f.Pix[y*f.Stride:], f.Pix[(y-1)*f.Stride:], f.Width)
			}
		}
	})
}
