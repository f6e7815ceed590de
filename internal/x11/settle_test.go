package x11

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestSettle(t *testing.T) {
	c, p := setupCapture(t, 320, 240)
	ctx := context.Background()

	t.Run("quiet screen", func(t *testing.T) {
		ok, err := c.Settle(ctx, 50*time.Millisecond, 30*time.Second)
		if err != nil || !ok {
			t.Fatalf("Settle = %v, %v; want true", ok, err)
		}
	})

	t.Run("after drawing stops", func(t *testing.T) {
		for i := range 5 {
			p.fill(xproto.Drawable(p.root), uint32(i), xrect(i, i, 10, 10))
		}
		start := time.Now()
		ok, err := c.Settle(ctx, 100*time.Millisecond, 30*time.Second)
		if err != nil || !ok {
			t.Fatalf("Settle = %v, %v; want true", ok, err)
		}
		// Quiet is counted from the call at the earliest.
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("Settle returned after %v, before the quiet period of 100ms", d)
		}
	})

	t.Run("drawing never stops", func(t *testing.T) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				xproto.ChangeGC(p.xc, p.gc, xproto.GcForeground, []uint32{uint32(i)})
				xproto.PolyFillRectangle(p.xc, xproto.Drawable(p.root), p.gc, []xproto.Rectangle{xrect(i%300, 50, 5, 5)})
				xproto.GetInputFocus(p.xc).Reply()
			}
		}()
		defer func() { close(stop); wg.Wait() }()
		start := time.Now()
		ok, err := c.Settle(ctx, 200*time.Millisecond, 600*time.Millisecond)
		if err != nil || ok {
			t.Fatalf("Settle = %v, %v; want false", ok, err)
		}
		if d := time.Since(start); d < 600*time.Millisecond {
			t.Errorf("Settle gave up after %v, before the 600ms timeout", d)
		}
	})

	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		p.fill(xproto.Drawable(p.root), 1, xrect(0, 0, 1, 1))
		ok, err := c.Settle(ctx, time.Hour, time.Hour)
		if ok || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Settle = %v, %v; want false, deadline exceeded", ok, err)
		}
	})

	t.Run("negative", func(t *testing.T) {
		if _, err := c.Settle(ctx, -time.Second, time.Second); !errors.Is(err, desktop.ErrInvalid) {
			t.Fatalf("Settle with negative quiet: %v, want ErrInvalid", err)
		}
	})

	t.Run("zero timeout", func(t *testing.T) {
		ok, err := c.Settle(ctx, 10*time.Millisecond, 0)
		if err != nil || ok {
			t.Fatalf("Settle = %v, %v; want false", ok, err)
		}
	})
}
