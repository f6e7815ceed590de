package agent

// Benchmarks of the desktop API end to end (the Go SDK over loopback HTTP to
// a real agent driving a real Xvfb + XFCE), each side by side with the usual
// way: an xdotool or scrot process per action. Reproduce with:
//
//	go test -run '^$' -bench . -benchtime 200x ./internal/agent/
//
// Every benchmark reports p50 and p95 in milliseconds besides ns/op.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
	"github.com/cubicle-dev/cubicle/internal/display"
)

// benchDesktop is an agent with an XFCE desktop and a terminal that swallows
// what is typed (echo off, cat > /dev/null), so typing leaves the screen alone.
type benchDesktop struct {
	sbx     *client.Sandbox
	display string
	draw    *xgb.Conn // a second client that changes pixels on demand
	gc      xproto.Gcontext
	win     xproto.Window
	size    desktop.Size
	stop    func()
}

var (
	benchMu       sync.Mutex
	benchDesktops = map[string]*benchDesktop{}
)

func freeDisplayNumber() (int, error) {
	for n := 180; n < 400; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		if c, err := net.Dial("unix", fmt.Sprintf("@/tmp/.X11-unix/X%d", n)); err == nil {
			c.Close()
			continue
		}
		return n, nil
	}
	return 0, fmt.Errorf("no free display number")
}

// desktopFor starts (once per size) an agent for the benchmarks.
func desktopFor(b testing.TB, w, h int) *benchDesktop {
	b.Helper()
	key := fmt.Sprintf("%dx%d", w, h)
	benchMu.Lock()
	defer benchMu.Unlock()
	if d, ok := benchDesktops[key]; ok {
		return d
	}
	n, err := freeDisplayNumber()
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(Config{Manage: true, Display: display.Config{Display: n, Width: w, Height: h}})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln) }()
	stop := func() { cancel(); <-done }
	sbx, err := client.ConnectAgent("http://" + ln.Addr().String())
	if err != nil {
		stop()
		b.Fatal(err)
	}
	if _, err := sbx.WaitReady(ctx, 3*time.Minute); err != nil {
		stop()
		b.Fatalf("desktop not ready: %v", err)
	}
	d := &benchDesktop{sbx: sbx, display: ":" + strconv.Itoa(n), size: desktop.Size{Width: w, Height: h}, stop: stop}
	if err := d.openTerminal(ctx); err != nil {
		stop()
		b.Fatal(err)
	}
	if err := d.openDrawer(); err != nil {
		stop()
		b.Fatal(err)
	}
	benchDesktops[key] = d
	return d
}

func (d *benchDesktop) openTerminal(ctx context.Context) error {
	title := "bench-sink"
	if _, err := d.sbx.LaunchCommand(ctx, "xfce4-terminal", "--disable-server", "--title", title,
		"--geometry", "100x30+40+60", "-x", "sh", "-c", "ls -la --color=always /usr/bin | head -40; stty -echo; exec cat > /dev/null"); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ws, err := d.sbx.FindWindows(ctx, client.WindowFilter{Title: title})
		if err == nil && len(ws) > 0 {
			if err := d.sbx.FocusWindow(ctx, ws[0].ID); err != nil {
				return err
			}
			_, err := d.sbx.DoBatch(ctx, desktop.Batch{Settle: &desktop.Settle{QuietMS: 500, TimeoutMS: 10000}})
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("terminal window did not appear")
}

// openDrawer maps a 2-pixel-wide override-redirect column down the right
// edge; repainting it dirties every row of the screen.
func (d *benchDesktop) openDrawer() error {
	n, _ := strconv.Atoi(strings.TrimPrefix(d.display, ":"))
	nc, err := net.Dial("unix", fmt.Sprintf("@/tmp/.X11-unix/X%d", n))
	if err != nil {
		return err
	}
	xc, err := xgb.NewConnNet(nc)
	if err != nil {
		return err
	}
	scr := xproto.Setup(xc).DefaultScreen(xc)
	win, _ := xproto.NewWindowId(xc)
	xproto.CreateWindow(xc, scr.RootDepth, win, scr.Root, int16(d.size.Width-2), 0, 2, uint16(d.size.Height), 0,
		xproto.WindowClassInputOutput, scr.RootVisual, xproto.CwBackPixel|xproto.CwOverrideRedirect, []uint32{0, 1})
	xproto.MapWindow(xc, win)
	gc, _ := xproto.NewGcontextId(xc)
	xproto.CreateGC(xc, gc, xproto.Drawable(win), xproto.GcForeground, []uint32{0xffffff})
	if _, err := xproto.GetInputFocus(xc).Reply(); err != nil {
		return err
	}
	d.draw, d.gc, d.win = xc, gc, win
	return nil
}

// changeAll repaints the column in a new colour, so every strip changes.
func (d *benchDesktop) changeAll(i int) { d.paint(i, 0, uint16(d.size.Height)) }

// changeSmall repaints a 2x16 piece of the column.
func (d *benchDesktop) changeSmall(i int) { d.paint(i, 100, 16) }

// paint fills rows [y, y+h) of the column with colour number i and waits
// until the screen shows it (a compositing window manager repaints later).
func (d *benchDesktop) paint(i int, y int16, h uint16) {
	colour := uint32(i*2654435761)&0xffffff | 0x010101
	xproto.ChangeGC(d.draw, d.gc, xproto.GcForeground, []uint32{colour})
	xproto.PolyFillRectangle(d.draw, xproto.Drawable(d.win), d.gc, []xproto.Rectangle{{X: 0, Y: y, Width: 2, Height: h}})
	root := xproto.Setup(d.draw).DefaultScreen(d.draw).Root
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		img, err := xproto.GetImage(d.draw, xproto.ImageFormatZPixmap, xproto.Drawable(root),
			int16(d.size.Width-1), y+int16(h)-1, 1, 1, 0xffffffff).Reply()
		if err == nil && len(img.Data) >= 3 &&
			uint32(img.Data[0])|uint32(img.Data[1])<<8|uint32(img.Data[2])<<16 == colour {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// timed runs op b.N times, recording each duration, and reports p50/p95.
func timed(b *testing.B, op func(i int) error, prepare func(i int)) {
	b.Helper()
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if prepare != nil {
			b.StopTimer()
			prepare(i)
			b.StartTimer()
		}
		start := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		durs = append(durs, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durs)
	pct := func(p float64) float64 {
		return float64(durs[int(p*float64(len(durs)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
}

// tool runs an X tool against the desktop the way a shell-per-action
// service would.
func (d *benchDesktop) tool(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DISPLAY="+d.display)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out)
	}
	return nil
}

func needTool(b *testing.B, name string) {
	if _, err := exec.LookPath(name); err != nil {
		b.Skipf("%s is not installed (scripts/deps.sh test installs it)", name)
	}
}

func BenchmarkClick(b *testing.B) {
	d := desktopFor(b, 1024, 768)
	ctx := context.Background()
	b.Run("api", func(b *testing.B) {
		timed(b, func(i int) error { return d.sbx.LeftClick(ctx, 300+i%50, 300) }, nil)
	})
	b.Run("xdotool", func(b *testing.B) {
		needTool(b, "xdotool")
		timed(b, func(i int) error {
			return d.tool("xdotool", "mousemove", "--sync", strconv.Itoa(300+i%50), "300", "click", "1")
		}, nil)
	})
}

func BenchmarkMoveMouse(b *testing.B) {
	d := desktopFor(b, 1024, 768)
	ctx := context.Background()
	b.Run("api", func(b *testing.B) {
		timed(b, func(i int) error { return d.sbx.MoveMouse(ctx, 200+i%100, 200) }, nil)
	})
	b.Run("xdotool", func(b *testing.B) {
		needTool(b, "xdotool")
		timed(b, func(i int) error { return d.tool("xdotool", "mousemove", "--sync", strconv.Itoa(200+i%100), "200") }, nil)
	})
}

func BenchmarkCursorPosition(b *testing.B) {
	d := desktopFor(b, 1024, 768)
	ctx := context.Background()
	b.Run("api", func(b *testing.B) {
		timed(b, func(int) error { _, err := d.sbx.GetCursorPosition(ctx); return err }, nil)
	})
	b.Run("xdotool", func(b *testing.B) {
		needTool(b, "xdotool")
		timed(b, func(int) error { return d.tool("xdotool", "getmouselocation") }, nil)
	})
}

func BenchmarkKeyCombo(b *testing.B) {
	d := desktopFor(b, 1024, 768)
	ctx := context.Background()
	b.Run("api", func(b *testing.B) {
		timed(b, func(int) error { return d.sbx.Press(ctx, "ctrl", "a") }, nil)
	})
	b.Run("xdotool", func(b *testing.B) {
		needTool(b, "xdotool")
		timed(b, func(int) error { return d.tool("xdotool", "key", "ctrl+a") }, nil)
	})
}

func benchType(b *testing.B, text string) {
	d := desktopFor(b, 1024, 768)
	ctx := context.Background()
	b.Run("api", func(b *testing.B) {
		timed(b, func(int) error { return d.sbx.Write(ctx, text) }, nil)
		b.ReportMetric(float64(len([]rune(text)))*float64(b.N)/b.Elapsed().Seconds(), "chars/s")
	})
	b.Run("xdotool", func(b *testing.B) {
		needTool(b, "xdotool")
		if len(text) > 100 {
			// 12 ms per character by default: 12 s a run.
			b.Skip("xdotool's default delay makes this take 12 s per run; see xdotool-delay0")
		}
		timed(b, func(int) error { return d.tool("xdotool", "type", "--", text) }, nil)
		b.ReportMetric(float64(len([]rune(text)))*float64(b.N)/b.Elapsed().Seconds(), "chars/s")
	})
	b.Run("xdotool-delay0", func(b *testing.B) {
		needTool(b, "xdotool")
		timed(b, func(int) error { return d.tool("xdotool", "type", "--delay", "0", "--", text) }, nil)
		b.ReportMetric(float64(len([]rune(text)))*float64(b.N)/b.Elapsed().Seconds(), "chars/s")
	})
}

func BenchmarkType11(b *testing.B) { benchType(b, "hello world") }

func BenchmarkType1000(b *testing.B) {
	base := "The quick brown fox jumps over the lazy dog 0123456789 (ok) "
	text := strings.Repeat(base, 1000/len(base)+1)[:1000]
	benchType(b, text)
}

func benchScreenshot(b *testing.B, w, h int) {
	d := desktopFor(b, w, h)
	ctx := context.Background()
	shot := func(int) error {
		img, err := d.sbx.ScreenshotWith(ctx, desktop.ScreenshotOptions{})
		if err == nil && (img.Width != w || len(img.Data) == 0) {
			err = fmt.Errorf("screenshot %dx%d, %d bytes", img.Width, img.Height, len(img.Data))
		}
		return err
	}
	b.Run("api-all-changed", func(b *testing.B) { timed(b, shot, d.changeAll) })
	b.Run("api-small-change", func(b *testing.B) { timed(b, shot, d.changeSmall) })
	b.Run("api-unchanged", func(b *testing.B) { timed(b, shot, nil) })
	b.Run("api-jpeg-all-changed", func(b *testing.B) {
		timed(b, func(int) error {
			_, err := d.sbx.ScreenshotWith(ctx, desktop.ScreenshotOptions{Format: "jpeg"})
			return err
		}, d.changeAll)
	})
	b.Run("scrot", func(b *testing.B) {
		needTool(b, "scrot")
		out := filepath.Join(b.TempDir(), "shot.png")
		timed(b, func(int) error {
			if err := d.tool("scrot", "-o", out); err != nil {
				return err
			}
			_, err := os.ReadFile(out)
			return err
		}, d.changeAll)
	})
}

func BenchmarkScreenshot1024x768(b *testing.B) { benchScreenshot(b, 1024, 768) }

func BenchmarkScreenshot1920x1080(b *testing.B) { benchScreenshot(b, 1920, 1080) }
