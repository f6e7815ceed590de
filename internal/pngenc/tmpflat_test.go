package pngenc

import "testing"

func BenchmarkTmpFlat(b *testing.B) {
	for _, c := range []struct {
		name string
		f    Frame
	}{{"flat", flatFrame(1024, 768, 255, 255, 255)}, {"text", textFrame(1024, 768, 1)}} {
		b.Run(c.name, func(b *testing.B) {
			e := New(Options{Workers: 1})
			out, _ := e.Encode(nil, c.f, nil)
			cpu := startCPU()
			for range b.N {
				out, _ = e.Encode(out[:0], c.f, nil)
			}
			cpu.report(b)
			b.ReportMetric(float64(len(out)), "bytes")
		})
	}
}
