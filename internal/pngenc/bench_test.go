package pngenc

import (
	"bytes"
	"hash/adler32"
	"image"
	"image/jpeg"
	"image/png"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The benchmarks run on real desktop captures (see frames_test.go) and put
// image/png and image/jpeg on the same frame side by side. "bytes" is the
// size of one output; "cpu-ms/op" is the CPU time of the whole process per
// operation (all threads, from getrusage), which other load on the machine
// disturbs much less than ns/op.
func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"desktop-1024x768.png", "firefox-1024x768.png", "desktop-1920x1080.png"} {
		f := loadFrame(b, name)
		b.Run(strings.TrimSuffix(name, ".png"), func(b *testing.B) { benchFrame(b, f) })
	}
}

func benchFrame(b *testing.B, f Frame) {
	mid := f.Height / 2
	for _, c := range []struct {
		name  string
		o     Options
		dirty func(y0, y1 int) bool
	}{
		{"pngenc/full", Options{}, nil},
		{"pngenc/full-1worker", Options{Workers: 1}, nil},
		{"pngenc/full-strip16", Options{StripHeight: 16}, nil},
		{"pngenc/full-strip64", Options{StripHeight: 64}, nil},
		{"pngenc/full-level2", Options{Level: 2}, nil},
		{"pngenc/1-dirty-strip", Options{}, func(y0, y1 int) bool { return y0 <= mid && mid < y1 }},
		{"pngenc/0-dirty-strips", Options{}, func(int, int) bool { return false }},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := New(c.o)
			out, err := e.Encode(nil, f, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(f.Width * f.Height * 4))
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			for range b.N {
				out, err = e.Encode(out[:0], f, c.dirty)
				if err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(len(out)), "bytes")
		})
	}

	rgba := image.NewRGBA(image.Rect(0, 0, f.Width, f.Height))
	b.Run("convert-to-RGBA", func(b *testing.B) {
		b.SetBytes(int64(f.Width * f.Height * 4))
		cpu := startCPU()
		for range b.N {
			toRGBA(rgba, f)
		}
		cpu.report(b)
	})
	toRGBA(rgba, f)
	for _, c := range []struct {
		name  string
		level png.CompressionLevel
	}{
		{"image-png/BestSpeed", png.BestSpeed},
		{"image-png/Default", png.DefaultCompression},
	} {
		b.Run(c.name, func(b *testing.B) {
			enc := png.Encoder{CompressionLevel: c.level, BufferPool: &pngPool{}}
			var buf bytes.Buffer
			b.SetBytes(int64(f.Width * f.Height * 4))
			cpu := startCPU()
			for range b.N {
				buf.Reset()
				if err := enc.Encode(&buf, rgba); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(buf.Len()), "bytes")
		})
	}
	b.Run("image-jpeg/q80", func(b *testing.B) {
		var buf bytes.Buffer
		b.SetBytes(int64(f.Width * f.Height * 4))
		cpu := startCPU()
		for range b.N {
			buf.Reset()
			if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: 80}); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
}

// The parts on their own: the checksum and the row filters on the
// 1024x768 desktop capture.

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

// cpuClock measures the process's CPU time.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{processCPU()} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pngPool keeps image/png's encoder buffers between frames, its best case.
type pngPool struct{ b *png.EncoderBuffer }

func (p *pngPool) Get() *png.EncoderBuffer  { return p.b }
func (p *pngPool) Put(b *png.EncoderBuffer) { p.b = b }
