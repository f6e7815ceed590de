package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// screen is what the agent needs of an X display. *x11.Conn implements it;
// tests of the HTTP layer may use a fake beside the real one.
type screen interface {
	ScreenSize(ctx context.Context) (desktop.Size, error)
	CursorPosition(ctx context.Context) (desktop.Point, error)
	MoveMouse(ctx context.Context, p desktop.Point) error
	Click(ctx context.Context, button desktop.Button, count int, mods []desktop.Keysym) error
	ButtonDown(ctx context.Context, button desktop.Button) error
	ButtonUp(ctx context.Context, button desktop.Button) error
	Scroll(ctx context.Context, dx, dy int, mods []desktop.Keysym) error
	Drag(ctx context.Context, path []desktop.Point, button desktop.Button, mods []desktop.Keysym) error
	KeyCombo(ctx context.Context, keys []desktop.Keysym) error
	KeyDown(ctx context.Context, keys []desktop.Keysym) error
	KeyUp(ctx context.Context, keys []desktop.Keysym) error
	HoldKeys(ctx context.Context, keys []desktop.Keysym, d time.Duration) error
	TypeText(ctx context.Context, text string) error
	Windows(ctx context.Context) ([]desktop.Window, error)
	ActiveWindow(ctx context.Context) (uint32, error)
	FocusWindow(ctx context.Context, id uint32) error
	Clipboard(ctx context.Context) (string, error)
	SetClipboard(ctx context.Context, text string) error
	Screenshot(ctx context.Context, opts desktop.ScreenshotOptions) (*desktop.Image, error)
	Settle(ctx context.Context, quiet, timeout time.Duration) (bool, error)
	Blank(ctx context.Context) (bool, error)
	WindowManager(ctx context.Context) (string, error)
	MappedClass(ctx context.Context, name string) (bool, error)
}

// launcher starts applications; *launch.Launcher implements it.
type launcher interface {
	App(ctx context.Context, name, uri string) (int, error)
	Command(ctx context.Context, argv []string, uri string) (int, error)
	Open(ctx context.Context, target string) (int, error)
}

// runBatch validates b against the screen and runs its actions in order,
// stopping at the first failure.
func runBatch(ctx context.Context, x screen, l launcher, b *desktop.Batch, lim desktop.Limits) (*desktop.BatchResult, error) {
	start := time.Now()
	res := &desktop.BatchResult{Results: []desktop.ActionResult{}}
	size, err := x.ScreenSize(ctx)
	if err != nil {
		return res, err
	}
	lim.Screen = size
	if err := b.Validate(lim); err != nil {
		return res, err
	}
	for i := range b.Actions {
		r, err := runAction(ctx, x, l, &b.Actions[i])
		if err != nil {
			return res, indexed(err, i)
		}
		r.Index = i
		res.Results = append(res.Results, r)
		res.Completed++
	}
	if b.Settle != nil {
		ok, err := settle(ctx, x, b.Settle)
		if err != nil {
			return res, err
		}
		res.Settled = &ok
	}
	if b.Screenshot != nil {
		img, err := x.Screenshot(ctx, *b.Screenshot)
		if err != nil {
			return res, err
		}
		res.Screenshot = img
	}
	res.DurationMS = ms(time.Since(start))
	return res, nil
}

// indexed returns err as a *desktop.Error that names action i.
func indexed(err error, i int) *desktop.Error {
	var de *desktop.Error
	if errors.As(err, &de) {
		c := *de
		c.Index = i
		return &c
	}
	return &desktop.Error{Code: desktop.CodeOf(err), Message: err.Error(), Index: i}
}

// runAction runs one validated action.
func runAction(ctx context.Context, x screen, l launcher, a *desktop.Action) (desktop.ActionResult, error) {
	start := time.Now()
	r := desktop.ActionResult{Type: a.Type}
	pos, hasPos := a.Pos()
	if hasPos && a.Type != desktop.Drag {
		if err := x.MoveMouse(ctx, pos); err != nil {
			return r, err
		}
		r.Cursor = &pos
	}
	mods := keysyms(a.Modifiers)
	var err error
	switch a.Type {
	case desktop.Move:
	case desktop.Click:
		count := a.Count
		if count == 0 {
			count = 1
		}
		err = x.Click(ctx, a.Button, count, mods)
	case desktop.MouseDown:
		err = x.ButtonDown(ctx, a.Button)
	case desktop.MouseUp:
		err = x.ButtonUp(ctx, a.Button)
	case desktop.Scroll:
		err = x.Scroll(ctx, a.DX, a.DY, mods)
	case desktop.Drag:
		err = x.Drag(ctx, a.Path, a.Button, mods)
		last := a.Path[len(a.Path)-1]
		r.Cursor = &last
	case desktop.Key:
		err = x.KeyCombo(ctx, keysyms(a.Keys))
	case desktop.KeyDown:
		err = x.KeyDown(ctx, keysyms(a.Keys))
	case desktop.KeyUp:
		err = x.KeyUp(ctx, keysyms(a.Keys))
	case desktop.HoldKey:
		err = x.HoldKeys(ctx, keysyms(a.Keys), time.Duration(a.DurationMS)*time.Millisecond)
	case desktop.Type:
		if a.Paste {
			err = paste(ctx, x, a)
		} else {
			err = x.TypeText(ctx, a.Text)
		}
	case desktop.Wait:
		err = sleep(ctx, time.Duration(a.DurationMS)*time.Millisecond)
	case desktop.Launch:
		if a.App != "" {
			r.PID, err = l.App(ctx, a.App, a.URI)
		} else {
			r.PID, err = l.Command(ctx, a.Command, a.URI)
		}
	case desktop.Open:
		r.PID, err = l.Open(ctx, a.Target)
	case desktop.FocusWindow:
		err = x.FocusWindow(ctx, a.Window)
	case desktop.SetClipboard:
		err = x.SetClipboard(ctx, a.Text)
	default:
		err = desktop.Errorf(desktop.CodeUnknownAction, "unknown action type %q", a.Type)
	}
	if err != nil {
		return r, err
	}
	if r.Cursor == nil && isPointer(a.Type) {
		p, err := x.CursorPosition(ctx)
		if err != nil {
			return r, err
		}
		r.Cursor = &p
	}
	if a.Settle != nil {
		ok, err := settle(ctx, x, a.Settle)
		if err != nil {
			return r, err
		}
		r.Settled = &ok
	}
	r.DurationMS = ms(time.Since(start))
	return r, nil
}

func paste(ctx context.Context, x screen, a *desktop.Action) error {
	if err := x.SetClipboard(ctx, a.Text); err != nil {
		return err
	}
	keys := a.PasteKeys
	if len(keys) == 0 {
		keys = []string{"ctrl", "v"}
	}
	return x.KeyCombo(ctx, keysyms(keys))
}

func settle(ctx context.Context, x screen, s *desktop.Settle) (bool, error) {
	quiet, timeout := s.Durations()
	return x.Settle(ctx, time.Duration(quiet)*time.Millisecond, time.Duration(timeout)*time.Millisecond)
}

func isPointer(t desktop.ActionType) bool {
	switch t {
	case desktop.Move, desktop.Click, desktop.MouseDown, desktop.MouseUp, desktop.Scroll:
		return true
	}
	return false
}

// keysyms resolves validated key names.
func keysyms(names []string) []desktop.Keysym {
	if len(names) == 0 {
		return nil
	}
	out := make([]desktop.Keysym, 0, len(names))
	for _, n := range names {
		ks, _ := desktop.LookupKey(n)
		out = append(out, ks)
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait: %w", ctx.Err())
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
