package x11

import (
	"context"
	"strconv"
	"testing"

	"github.com/cubicle-dev/cubicle/desktop"
)

func TestLeakNoClientsAfterManyActions(t *testing.T) {
	s, c := testDisplay(t)
	ctx := context.Background()
	win := newTestWindow(t, s.Display, testWindowOptions{Rect: testArea, Managed: true,
		Title: "target", Instance: "target", Class: "Target"})
	win.focus(t)
	observer := dialSecond(t, c)
	count := func() int {
		t.Helper()
		n, err := observer.ClientCount(ctx)
		if err != nil {
			t.Fatalf("ClientCount: %v", err)
		}
		return n
	}
	before := count()
	if before < 3 {
		t.Fatalf("ClientCount() = %d with at least three clients connected", before)
	}

	ctrlA := keys(t, "ctrl", "a")
	const rounds = 3000
	for i := range rounds {
		var err error
		switch i % 12 {
		case 0:
			err = c.MoveMouse(ctx, desktop.Point{X: 150 + i%400, Y: 100 + i%300})
		case 1:
			err = c.Click(ctx, desktop.Left, 1+i%3, nil)
		case 2:
			err = c.KeyCombo(ctx, ctrlA)
		case 3:
			err = c.TypeText(ctx, "ab é"+strconv.Itoa(i))
		case 4:
			_, err = c.Windows(ctx)
		case 5:
			_, err = c.ActiveWindow(ctx)
		case 6:
			_, err = c.CursorPosition(ctx)
		case 7:
			err = c.SetClipboard(ctx, "text "+strconv.Itoa(i))
		case 8:
			var got string
			got, err = observer.Clipboard(ctx)
			if err == nil && got != "text "+strconv.Itoa(i-1) {
				t.Fatalf("round %d: the other connection read %q from the clipboard", i, got)
			}
		case 9:
			err = c.Scroll(ctx, 0, 1, nil)
		case 10:
			err = c.FocusWindow(ctx, uint32(win.win))
		case 11:
			err = c.Drag(ctx, []desktop.Point{{X: 200, Y: 200}, {X: 260, Y: 230}}, desktop.Left, nil)
		}
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if i%500 == 0 {
			win.reset() // keep the recorded events small
		}
	}
	if after := count(); after != before {
		t.Errorf("ClientCount() = %d after %d actions, want %d as before", after, rounds, before)
	}

	for i := range 200 {
		// Order every event decoded so far before the next Dial (see dialSecond).
		win.reset()
		if err := observer.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		d := dialSecond(t, c)
		if err := d.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	poll(t, "the X server to drop the closed connections", func() bool { return count() == before })
}
