package local

import (
	"context"
	"slices"
	"testing"
	"time"
)

func p50(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2]) / float64(time.Millisecond)
}

// BenchmarkCreate measures Create until the agent runs as pid 1 (busybox
// root filesystem, 64 MiB disk); p50-ms is the median.
func BenchmarkCreate(b *testing.B) {
	h := newHarness(b)
	rootfs := busyboxRootFS(b)
	ctx := context.Background()
	var d []time.Duration
	for b.Loop() {
		spec := h.spec(rootfs, "ready")
		start := time.Now()
		if _, err := h.b.Create(ctx, spec); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
		b.StopTimer()
		if err := h.b.Destroy(ctx, spec.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(p50(d), "p50-ms")
}

// BenchmarkDestroy measures Destroy of a running sandbox until nothing of
// it is left; p50-ms is the median.
func BenchmarkDestroy(b *testing.B) {
	h := newHarness(b)
	rootfs := busyboxRootFS(b)
	ctx := context.Background()
	var d []time.Duration
	for b.Loop() {
		b.StopTimer()
		spec := h.spec(rootfs, "ready")
		if _, err := h.b.Create(ctx, spec); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := h.b.Destroy(ctx, spec.ID); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.ReportMetric(p50(d), "p50-ms")
}
