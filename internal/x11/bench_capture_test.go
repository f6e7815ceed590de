package x11

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/xvfbtest"
)

// BenchmarkScreenshot measures screenshots of a real XFCE desktop (xfwm4,
// xfce4-panel, xfdesktop with its wallpaper, a terminal showing a file
// listing) at two sizes, next to the usual way: scrot through os/exec plus
// reading the file back.
func BenchmarkScreenshot(b *testing.B) {
	for _, size := range []desktop.Size{{Width: 1024, Height: 768}, {Width: 1920, Height: 1080}} {
		b.Run(fmt.Sprintf("%dx%d", size.Width, size.Height), func(b *testing.B) {
			s, c, p := startScene(b, size.Width, size.Height)
			// Draw over the windows too, as an application repainting itself.
			xproto.ChangeGC(p.xc, p.gc, xproto.GcSubwindowMode, []uint32{xproto.SubwindowModeIncludeInferiors})
			// Somewhere inside the terminal, where a small change lands.
			changeAt := func(i int) xproto.Rectangle { return xrect(60+(i%20)*20, 100+(i/20%10)*20, 16, 16) }

			b.Run("PNG", func(b *testing.B) {
				benchShots(b, c, desktop.ScreenshotOptions{}, func(int) { markAllDirty(c) })
			})
			b.Run("PNGSmallChange", func(b *testing.B) {
				benchShots(b, c, desktop.ScreenshotOptions{}, func(i int) {
					b.StopTimer()
					p.fill(xproto.Drawable(p.root), uint32(i*0x010101)&0xffffff, changeAt(i))
					b.StartTimer()
				})
			})
			b.Run("PNGUnchanged", func(b *testing.B) {
				benchShots(b, c, desktop.ScreenshotOptions{}, nil)
			})
			b.Run("PNGHalfSize", func(b *testing.B) {
				benchShots(b, c, desktop.ScreenshotOptions{Width: size.Width / 2}, func(int) { markAllDirty(c) })
			})
			b.Run("JPEG", func(b *testing.B) {
				benchShots(b, c, desktop.ScreenshotOptions{Format: "jpeg"}, func(int) { markAllDirty(c) })
			})
			b.Run("scrot", func(b *testing.B) {
				out := filepath.Join(b.TempDir(), "x.png")
				var times []time.Duration
				n := 0
				for i := 0; b.Loop(); i++ {
					t0 := time.Now()
					cmd := s.Command(b, "scrot", "-o", out)
					if msg, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("scrot: %v: %s", err, msg)
					}
					data, err := os.ReadFile(out)
					if err != nil {
						b.Fatal(err)
					}
					n = len(data)
					times = append(times, time.Since(t0))
				}
				reportTimes(b, times, n)
			})
		})
	}
}

// benchShots takes screenshots with opts; before each, change(i) makes the
// screen differ when it is set.
func benchShots(b *testing.B, c *Conn, opts desktop.ScreenshotOptions, change func(i int)) {
	ctx := context.Background()
	if _, err := c.Screenshot(ctx, opts); err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	n := 0
	for i := 0; b.Loop(); i++ {
		if change != nil {
			change(i)
		}
		t0 := time.Now()
		img, err := c.Screenshot(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(t0))
		if img.Cached != (change == nil) {
			b.Fatalf("cached %v, want %v", img.Cached, change == nil)
		}
		n = len(img.Data)
	}
	reportTimes(b, times, n)
}

func reportTimes(b *testing.B, times []time.Duration, size int) {
	if len(times) == 0 {
		return
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(size), "bytes")
}

// markAllDirty makes the next screenshot grab and encode everything, as if
// every row had been drawn.
func markAllDirty(c *Conn) {
	d := &c.cap.damage
	d.mu.Lock()
	d.rows.addAll()
	d.mu.Unlock()
}

// startScene runs an Xvfb of w x h with an XFCE desktop and a terminal, and
// waits until everything is mapped and the screen has been quiet for a
// second.
func startScene(b *testing.B, w, h int) (*xvfbtest.Server, *Conn, *painter) {
	b.Helper()
	s := xvfbtest.Start(b, xvfbtest.Options{Width: w, Height: h})
	c := dialCapture(b, s.Display, Config{})
	p := newPainter(b, s.Display)
	home := b.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"), "XDG_RUNTIME_DIR=" + home,
		"NO_AT_BRIDGE=1", "GTK_A11Y=none"}
	startBg(b, s, env, "dbus-run-session", "--", "sh", "-c",
		`xfwm4 & xfce4-panel & xfdesktop & xfce4-terminal --disable-server --geometry 100x34+40+60 -x bash -c 'ls -la --color=always /usr/bin | head -40; df -h; stty -echo; exec cat >/dev/null' & wait`)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, class := range []string{"xfce4-panel", "xfdesktop", "xfce4-terminal"} {
		for !p.hasClass(class) {
			if ctx.Err() != nil {
				b.Fatalf("no %s window after 90s", class)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for {
		ok, err := c.Settle(ctx, time.Second, 10*time.Second)
		if err != nil {
			b.Fatalf("desktop never settled: %v", err)
		}
		if ok {
			break
		}
	}
	return s, c, p
}

// startBg starts name in its own process group on s's display with env
// added, and kills the group at cleanup.
func startBg(b *testing.B, s *xvfbtest.Server, env []string, name string, args ...string) {
	b.Helper()
	cmd := s.Command(b, name, args...)
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

// hasClass reports whether a mapped window anywhere in the tree has a
// WM_CLASS containing class.
func (p *painter) hasClass(class string) bool {
	var walk func(w xproto.Window, depth int) bool
	walk = func(w xproto.Window, depth int) bool {
		r, err := xproto.GetProperty(p.xc, false, w, xproto.AtomWmClass, xproto.AtomString, 0, 64).Reply()
		if err == nil && strings.Contains(strings.ToLower(string(r.Value)), class) {
			a, err := xproto.GetWindowAttributes(p.xc, w).Reply()
			if err == nil && a.MapState == xproto.MapStateViewable {
				return true
			}
		}
		if depth == 0 {
			return false
		}
		t, err := xproto.QueryTree(p.xc, w).Reply()
		if err != nil {
			return false
		}
		for _, ch := range t.Children {
			if walk(ch, depth-1) {
				return true
			}
		}
		return false
	}
	return walk(p.root, 2)
}
