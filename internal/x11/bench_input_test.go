package x11

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// The input benchmarks run each action natively and with the usual tool
// (xdotool through os/exec) on the same display, so one run compares both:
//
//	go test -run XXX -bench . -benchtime 200x ./internal/x11/
//
// Each reports its median and 95th percentile latency (p50-ms, p95-ms).

// benchDisplay starts an Xvfb and a Conn for one benchmark and its
// sub-benchmarks.
func benchDisplay(b *testing.B) (*xvfbtest.Server, *Conn) {
	b.Helper()
	s := xvfbtest.Start(b, xvfbtest.Options{Width: 1024, Height: 768})
	return s, dialTest(b, s.Display)
}

// measure runs op b.N times and reports the latency percentiles.
func measure(b *testing.B, op func(i int) error) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := op(i); err != nil {
			b.Fatalf("iteration %d: %v", i, err)
		}
		d = append(d, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(d)
	ms := func(q float64) float64 {
		return float64(d[min(int(q*float64(len(d))), len(d)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.95), "p95-ms")
}

// xdotool runs xdotool on s with args and waits for it.
func xdotool(b *testing.B, s *xvfbtest.Server, args ...string) error {
	out, err := s.Command(b, "xdotool", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xdotool %v: %v: %s", args, err, out)
	}
	return nil
}

func skipWithoutXdotool(b *testing.B) {
	if _, err := exec.LookPath("xdotool"); err != nil {
		b.Skip("xdotool is not installed (apt-get install xdotool)")
	}
}

// points alternates between two spots so every move has work to do.
func points(i int) desktop.Point {
	if i%2 == 0 {
		return desktop.Point{X: 300, Y: 200}
	}
	return desktop.Point{X: 437, Y: 323}
}

func BenchmarkMoveMouse(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	b.Run("native", func(b *testing.B) {
		measure(b, func(i int) error { return c.MoveMouse(ctx, points(i)) })
	})
	b.Run("xdotool", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(i int) error {
			p := points(i)
			return xdotool(b, s, "mousemove", "--sync", strconv.Itoa(p.X), strconv.Itoa(p.Y))
		})
	})
}

func BenchmarkClick(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	b.Run("native", func(b *testing.B) {
		measure(b, func(int) error { return c.Click(ctx, desktop.Left, 1, nil) })
	})
	b.Run("xdotool", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "click", "1") })
	})
	b.Run("xdotool-delay0", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "click", "--delay", "0", "1") })
	})
}

func BenchmarkKeyCombo(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	ctrlA := keys(b, "ctrl", "a")
	b.Run("native", func(b *testing.B) {
		measure(b, func(int) error { return c.KeyCombo(ctx, ctrlA) })
	})
	b.Run("xdotool", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "key", "ctrl+a") })
	})
	b.Run("xdotool-delay0", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "key", "--delay", "0", "ctrl+a") })
	})
}

func BenchmarkType11(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	const text = "hello world"
	b.Run("native", func(b *testing.B) {
		measure(b, func(int) error { return c.TypeText(ctx, text) })
	})
	b.Run("xdotool", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "type", text) })
	})
	b.Run("xdotool-delay0", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "type", "--delay", "0", text) })
	})
}

// BenchmarkType1000 types 1,000 mixed characters, a third of them outside
// the keyboard layout. xdotool runs only without its per-key delay: with
// the default 12 ms it needs over 12 s per text.
func BenchmarkType1000(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	text := mixedText(1000)
	b.Run("native", func(b *testing.B) {
		measure(b, func(int) error { return c.TypeText(ctx, text) })
	})
	b.Run("xdotool-delay0", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "type", "--delay", "0", text) })
	})
}

func BenchmarkCursorPosition(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	b.Run("native", func(b *testing.B) {
		measure(b, func(int) error {
			_, err := c.CursorPosition(ctx)
			return err
		})
	})
	b.Run("xdotool", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "getmouselocation") })
	})
}

// BenchmarkWindows lists 20 named top-level windows.
func BenchmarkWindows(b *testing.B) {
	s, c := benchDisplay(b)
	ctx := context.Background()
	for i := range 20 {
		newTestWindow(b, s.Display, testWindowOptions{
			Rect:    desktop.Rect{X: 10 + 30*i, Y: 10 + 20*i, Width: 200, Height: 150},
			Managed: true, Title: "window " + strconv.Itoa(i), Instance: "bench", Class: "Bench", PID: 1000 + i,
		})
	}
	wins, err := c.Windows(ctx)
	if err != nil || len(wins) != 20 {
		b.Fatalf("Windows() = %d windows, %v; want 20", len(wins), err)
	}
	b.Run("native", func(b *testing.B) {
		measure(b, func(int) error {
			_, err := c.Windows(ctx)
			return err
		})
	})
	b.Run("xdotool", func(b *testing.B) {
		skipWithoutXdotool(b)
		measure(b, func(int) error { return xdotool(b, s, "search", "--onlyvisible", "--name", ".") })
	})
}
