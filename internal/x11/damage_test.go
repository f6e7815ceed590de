package x11

import (
	"context"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestDamageRowSet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		add   [][2]int
		query [2]int
		want  bool
		wantN int
	}{
		{"empty", 100, nil, [2]int{0, 100}, false, 0},
		{"one row", 100, [][2]int{{5, 6}}, [2]int{5, 6}, true, 1},
		{"just before", 100, [][2]int{{5, 6}}, [2]int{0, 5}, false, 1},
		{"just after", 100, [][2]int{{5, 6}}, [2]int{6, 100}, false, 1},
		{"word edge 63", 200, [][2]int{{63, 64}}, [2]int{60, 64}, true, 1},
		{"word edge 64", 200, [][2]int{{64, 65}}, [2]int{0, 64}, false, 1},
		{"span words", 300, [][2]int{{10, 250}}, [2]int{249, 250}, true, 240},
		{"query spans words", 300, [][2]int{{200, 201}}, [2]int{1, 299}, true, 1},
		{"clipped", 100, [][2]int{{-5, 3}, {98, 200}}, [2]int{0, 100}, true, 5},
		{"last row", 769, [][2]int{{768, 769}}, [2]int{768, 769}, true, 1},
		{"empty range", 100, [][2]int{{7, 7}, {9, 3}}, [2]int{0, 100}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s rowSet
			s.reset(tc.n)
			for _, a := range tc.add {
				s.addRange(a[0], a[1])
			}
			if got := s.any(tc.query[0], tc.query[1]); got != tc.want {
				t.Errorf("any(%d, %d) = %v, want %v", tc.query[0], tc.query[1], got, tc.want)
			}
			if got := s.count(); got != tc.wantN {
				t.Errorf("count = %d, want %d", got, tc.wantN)
			}
			// any agrees with a row-by-row check everywhere.
			for y := 0; y < tc.n; y++ {
				in := false
				for _, a := range tc.add {
					in = in || (y >= a[0] && y < a[1])
				}
				if s.any(y, y+1) != in {
					t.Fatalf("row %d: any = %v, want %v", y, !in, in)
				}
			}
		})
	}
}

// TestDamageReportsChildWindows checks that drawing anywhere, inside child
// windows too, is reported on the root's damage, with the right rows.
func TestDamageReportsChildWindows(t *testing.T) {
	c, p := setupCapture(t, 640, 480)
	if !c.cap.damage.available() {
		t.Fatal("no DAMAGE extension on Xvfb")
	}
	win := p.window(100, 100, 200, 200, 0x00ff00)
	inner := p.window(0, 0, 10, 10, 0x0000ff) // a second top-level, to reparent below
	xproto.ReparentWindow(p.xc, inner, win, 50, 60)
	p.sync()
	ctx := context.Background()
	take := func() rowSet {
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		var s rowSet
		s.reset(480)
		c.cap.damage.take(&s)
		return s
	}
	take()
	for _, tc := range []struct {
		name   string
		d      xproto.Drawable
		r      xproto.Rectangle
		y0, y1 int // screen rows
	}{
		{"root", xproto.Drawable(p.root), xrect(5, 7, 10, 3), 7, 10},
		{"child", xproto.Drawable(win), xrect(5, 7, 10, 3), 107, 110},
		{"grandchild", xproto.Drawable(inner), xrect(1, 2, 3, 4), 162, 166},
		{"last row", xproto.Drawable(p.root), xrect(0, 479, 640, 1), 479, 480},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, before := c.cap.damage.latest()
			p.fill(tc.d, 0xff00ff, tc.r)
			s := take()
			if _, after := c.cap.damage.latest(); after == before {
				t.Fatalf("no damage reported")
			}
			if !s.any(tc.y0, tc.y1) {
				t.Errorf("rows %d-%d not dirty", tc.y0, tc.y1-1)
			}
			if s.any(0, tc.y0) || s.any(tc.y1, 480) {
				t.Errorf("rows outside %d-%d dirty (%d dirty in all)", tc.y0, tc.y1-1, s.count())
			}
		})
	}
	// Nothing drawn: nothing dirty.
	if s := take(); s.count() != 0 {
		t.Errorf("%d rows dirty with nothing drawn", s.count())
	}
}

// TestDamageWithinDeadline makes sure damage reports keep flowing under a
// burst of drawing and that a Sync sees all of them.
func TestDamageBurst(t *testing.T) {
	c, p := setupCapture(t, 640, 480)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var s rowSet
	s.reset(480)
	c.Sync(ctx)
	c.cap.damage.take(&s)
	for y := 0; y < 480; y += 3 {
		p.fillAsync(xproto.Drawable(p.root), uint32(y), xrect(y%640, y, 1, 1))
	}
	p.sync()
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	s.clearAll()
	c.cap.damage.take(&s)
	if got := s.count(); got != 160 {
		t.Errorf("%d rows dirty, want 160", got)
	}
}

// TestScreenshotWithoutDamage checks the behaviour when the server cannot
// report damage: every screenshot is taken and encoded afresh.
func TestScreenshotWithoutDamage(t *testing.T) {
	const w, h = 320, 240
	c, p := setupCapture(t, w, h)
	paintPattern(p, w, h)
	c.closeDamage(&c.cap.damage)
	if c.cap.damage.available() {
		t.Fatal("damage still tracked after closeDamage")
	}
	for i := range 3 {
		img := shot(t, c, desktop.ScreenshotOptions{})
		if img.Cached {
			t.Fatalf("screenshot %d cached without damage tracking", i)
		}
		if d := firstDiff(decodeImage(t, img), p.grab(0, 0, w, h), w); d != "" {
			t.Fatalf("screenshot %d vs GetImage: %s", i, d)
		}
		p.fill(xproto.Drawable(p.root), uint32(i), xrect(i, i, 1, 1))
	}
	ok, err := c.Settle(context.Background(), 10*time.Millisecond, time.Minute)
	if err != nil || !ok {
		t.Errorf("Settle = %v, %v; want true", ok, err)
	}
}
