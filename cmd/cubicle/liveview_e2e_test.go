package main

import (
	"context"
	be "encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coder/websocket"

	"github.com/cubicle-dev/cubicle/client"
	"github.com/cubicle-dev/cubicle/desktop"
)

// canvasJS describes noVNC's canvas: its size on the page and in pixels,
// how many sampled pixels are not black, and a hash of them.
const canvasJS = `(() => {
  const c = document.querySelector("#screen canvas");
  if (!c || !c.width) return {w: 0, h: 0, lit: 0, hash: 0, left: 0, top: 0, cw: 0};
  const r = c.getBoundingClientRect();
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let lit = 0, hash = 0;
  for (let i = 0; i < d.length; i += 4 * 7) {
    const v = d[i] | (d[i + 1] << 8) | (d[i + 2] << 16);
    if (v) lit++;
    hash = (Math.imul(hash, 31) + v) >>> 0;
  }
  return {w: c.width, h: c.height, lit, hash, left: r.left, top: r.top, cw: r.width};
})()`

type canvasStats struct {
	W    int     `json:"w"`
	H    int     `json:"h"`
	Lit  int     `json:"lit"`
	Hash uint32  `json:"hash"`
	Left float64 `json:"left"`
	Top  float64 `json:"top"`
	CW   float64 `json:"cw"`
}

func canvas(ctx context.Context) (canvasStats, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[canvasStats](canvasJS))
}

// pagePoint is where desktop pixel (x, y) is on the page.
func (s canvasStats) pagePoint(x, y int) (float64, float64) {
	scale := s.CW / float64(s.W)
	return s.Left + float64(x)*scale, s.Top + float64(y)*scale
}

func bodyState(ctx context.Context) string {
	st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.dataset.state || ""`))
	return st
}

// TestLiveViewEndToEnd drives the dashboard and the live view in a real
// headless Chromium against a real server and desktop sandbox.
func TestLiveViewEndToEnd(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("cubicle serve needs root")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("needs Debian's chromium: apt-get install -y chromium")
	}
	if _, err := os.Stat("/usr/share/novnc/core/rfb.js"); err != nil {
		t.Skip("needs Debian's novnc: apt-get install -y novnc")
	}
	srv, _ := serveForTest(t)
	ctx := context.Background()
	c, err := client.New(srv.url, srv.key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sbx, err := c.Create(ctx, client.CreateOptions{Timeout: 10 * time.Minute, Metadata: map[string]string{"suite": "liveview"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	defer sbx.Kill(context.WithoutCancel(ctx))
	id := sbx.ID()

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tab := func(t *testing.T) context.Context {
		tctx, cancel := chromedp.NewContext(browser)
		t.Cleanup(cancel)
		tctx, cancelT := context.WithTimeout(tctx, 60*time.Second)
		t.Cleanup(cancelT)
		return tctx
	}

	t.Run("dashboard", func(t *testing.T) {
		tctx := tab(t)
		row := fmt.Sprintf(`tr[data-id="%s"]`, id)
		err := chromedp.Do(tctx,
			chromedp.Navigate(srv.url+"/"),
			chromedp.WaitVisible(`#key`),
			chromedp.SendKeys(`#key`, srv.key),
			chromedp.Click(`#login-form button`),
			chromedp.WaitVisible(row),
		)
		if err != nil {
			t.Fatalf("dashboard: %v", err)
		}
		text, err := chromedp.Run(tctx, chromedp.Text(row))
		if err != nil {
			t.Fatalf("dashboard row: %v", err)
		}
		_, err = chromedp.Run(tctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector('%s img').src.startsWith("blob:")`, row),
			chromedp.WithPollingTimeout(30*time.Second)))
		if err != nil {
			t.Fatalf("thumbnail: %v", err)
		}
		attr, err := chromedp.Run(tctx, chromedp.AttributeValue(row+" img", "src"))
		if err != nil {
			t.Fatal(err)
		}
		thumb := attr.Value
		if !strings.Contains(text, "running") || !strings.Contains(text, "suite=liveview") || !strings.Contains(text, "desktop") {
			t.Errorf("the dashboard row says %q; want the state, template and metadata", text)
		}
		if !strings.HasPrefix(thumb, "blob:") {
			t.Errorf("thumbnail src %q", thumb)
		}
	})

	view, err := sbx.StreamURL(ctx, client.StreamURLOptions{ViewOnly: true, Resize: client.ResizeOff})
	if err != nil {
		t.Fatalf("stream URL: %v", err)
	}
	viewTab := tab(t)
	var first canvasStats

	t.Run("first frame", func(t *testing.T) {
		var times []time.Duration
		for range 5 {
			start := time.Now()
			if err := chromedp.Do(viewTab, chromedp.Navigate(view.URL)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the desktop on the canvas", 30*time.Second, func() (bool, string) {
				s, err := canvas(viewTab)
				first = s
				return err == nil && s.Lit > 0, fmt.Sprintf("%+v %v", s, err)
			})
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		t.Logf("open URL -> first frame on the canvas: median %v, min %v, max %v (5 page loads)",
			times[2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[4].Round(time.Millisecond))
		if first.W != 1024 || first.H != 768 {
			t.Errorf("canvas %dx%d, want the desktop's 1024x768", first.W, first.H)
		}
	})

	t.Run("pixels follow the desktop", func(t *testing.T) {
		if _, err := sbx.LaunchCommand(ctx, "xfce4-terminal", "--disable-server", "--title=liveview-term"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the canvas to change", 60*time.Second, func() (bool, string) {
			s, err := canvas(viewTab)
			return err == nil && s.Lit > 0 && s.Hash != first.Hash, fmt.Sprintf("%+v %v", s, err)
		})
	})

	t.Run("view only", func(t *testing.T) {
		if err := sbx.MoveMouse(ctx, 5, 5); err != nil {
			t.Fatal(err)
		}
		s, err := canvas(viewTab)
		if err != nil {
			t.Fatal(err)
		}
		x, y := s.pagePoint(600, 400)
		if err := chromedp.Do(viewTab, chromedp.MouseClickXY(x, y)); err != nil {
			t.Fatal(err)
		}
		// A viewer that ignores the page's view-only setting: the server
		// drops its pointer events.
		rfbPointer(t, view.WebSocketURL, 700, 500)
		if p, err := sbx.GetCursorPosition(ctx); err != nil || p != (desktop.Point{X: 5, Y: 5}) {
			t.Errorf("after view-only clicks the pointer is at %+v (%v), want it left at 5,5", p, err)
		}
		control, err := sbx.StreamURL(ctx, client.StreamURLOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rfbPointer(t, control.WebSocketURL, 300, 200)
		var p desktop.Point
		waitFor(t, "the control viewer's pointer event", 30*time.Second, func() (bool, string) {
			p, err = sbx.GetCursorPosition(ctx)
			return err == nil && p.X == 300 && p.Y == 200, fmt.Sprintf("%+v %v", p, err)
		})
		if err := sbx.RevokeStreamURL(ctx, control.TokenID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("control types", func(t *testing.T) {
		u, err := sbx.StreamURL(ctx, client.StreamURLOptions{Resize: client.ResizeOff})
		if err != nil {
			t.Fatal(err)
		}
		ctl := tab(t)
		if err := chromedp.Do(ctl, chromedp.Navigate(u.URL)); err != nil {
			t.Fatal(err)
		}
		var s canvasStats
		waitFor(t, "the control view", 30*time.Second, func() (bool, string) {
			s, err = canvas(ctl)
			return err == nil && s.Lit > 0 && bodyState(ctl) == "connected", fmt.Sprintf("%+v %v", s, err)
		})
		wins, err := sbx.FindWindows(ctx, client.WindowFilter{Title: "liveview-term"})
		if err != nil || len(wins) == 0 {
			t.Fatalf("terminal window: %v %v", wins, err)
		}
		w := wins[0]
		x, y := s.pagePoint(w.X+w.Width/2, w.Y+w.Height/2)
		err = chromedp.Do(ctl,
			chromedp.MouseClickXY(x, y),
			chromedp.KeyEvent("echo typed-through-the-view > /tmp/liveview.txt"),
			chromedp.KeyEvent(kb.Enter))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the typed command's file", 30*time.Second, func() (bool, string) {
			b, err := sbx.Files.Read(ctx, "/tmp/liveview.txt")
			return err == nil && string(b) == "typed-through-the-view\n", fmt.Sprintf("%q %v", b, err)
		})
		p, err := sbx.GetCursorPosition(ctx)
		if err != nil || p.X < w.X || p.X > w.X+w.Width {
			t.Errorf("after the click the pointer is at %+v (%v); want inside the terminal %+v", p, err, w.Rect)
		}

		// Revoking the URL closes its open view and refuses it from then on.
		if err := sbx.RevokeStreamURL(ctx, u.TokenID); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the revoked view to close", 30*time.Second, func() (bool, string) {
			st := bodyState(ctl)
			return st == "disconnected", st
		})
		pageRefused(t, u.URL, "token_revoked")
	})

	t.Run("expired", func(t *testing.T) {
		u, err := sbx.StreamURL(ctx, client.StreamURLOptions{ViewOnly: true, TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(u.ExpiresAt) + 100*time.Millisecond)
		pageRefused(t, u.URL, "token_expired")
	})

	t.Run("kill closes the view", func(t *testing.T) {
		if st := bodyState(viewTab); st != "connected" {
			t.Fatalf("the view-only page is %q before the kill, want connected", st)
		}
		if err := sbx.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the view of the killed sandbox to close", 30*time.Second, func() (bool, string) {
			st := bodyState(viewTab)
			return st == "disconnected", st
		})
		status, _ := chromedp.Run(viewTab, chromedp.Text(`#status`))
		if !strings.Contains(status, "sandbox_gone") {
			t.Errorf("status %q, want it to say sandbox_gone", status)
		}
	})
}

// pageRefused checks that the page of url answers 401 with reason.
func pageRefused(t *testing.T, url, reason string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), `data-reason="`+reason+`"`) {
		t.Errorf("GET the page: %d, want 401 with reason %s:\n%s", resp.StatusCode, reason, b)
	}
}

// rfbPointer speaks RFB over the stream WebSocket at wsURL like any VNC
// viewer and sends one pointer move to (x, y).
func rfbPointer(t *testing.T, wsURL string, x, y int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	defer ws.CloseNow()
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	read := func(n int) []byte {
		b := make([]byte, n)
		if _, err := io.ReadFull(nc, b); err != nil {
			t.Fatalf("rfb: read %d bytes: %v", n, err)
		}
		return b
	}
	if v := read(12); string(v) != "RFB 003.008\n" {
		t.Fatalf("server version %q", v)
	}
	nc.Write([]byte("RFB 003.008\n"))
	types := read(int(read(1)[0]))
	if !slices.Contains(types, 1) {
		t.Fatalf("security types %v lack None", types)
	}
	nc.Write([]byte{1})
	if r := read(4); be.BigEndian.Uint32(r) != 0 {
		t.Fatalf("security result %v", r)
	}
	nc.Write([]byte{1}) // shared
	init := read(24)
	read(int(be.BigEndian.Uint32(init[20:])))
	msg := []byte{5, 0, 0, 0, 0, 0}
	be.BigEndian.PutUint16(msg[2:], uint16(x))
	be.BigEndian.PutUint16(msg[4:], uint16(y))
	if _, err := nc.Write(msg); err != nil {
		t.Fatal(err)
	}
	// A full update request is always answered, and only after the
	// pointer event before it was handled.
	nc.Write([]byte{3, 0, 0, 0, 0, 0, 0, 16, 0, 16})
	read(1)
	ws.Close(websocket.StatusNormalClosure, "")
}
