package client

import (
	"context"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// LeftClick moves the pointer to (x, y) and clicks the left button, in one
// round trip.
func (s *Sandbox) LeftClick(ctx context.Context, x, y int) error {
	return s.click(ctx, x, y, "", 0)
}

// DoubleClick moves the pointer to (x, y) and double-clicks the left button.
func (s *Sandbox) DoubleClick(ctx context.Context, x, y int) error {
	return s.click(ctx, x, y, "", 2)
}

// TripleClick moves the pointer to (x, y) and triple-clicks the left button
// (selects a line in most applications).
func (s *Sandbox) TripleClick(ctx context.Context, x, y int) error {
	return s.click(ctx, x, y, "", 3)
}

// RightClick moves the pointer to (x, y) and clicks the right button.
func (s *Sandbox) RightClick(ctx context.Context, x, y int) error {
	return s.click(ctx, x, y, desktop.Right, 0)
}

// MiddleClick moves the pointer to (x, y) and clicks the middle button.
func (s *Sandbox) MiddleClick(ctx context.Context, x, y int) error {
	return s.click(ctx, x, y, desktop.Middle, 0)
}

func (s *Sandbox) click(ctx context.Context, x, y int, b desktop.Button, count int) error {
	_, err := s.Act(ctx, desktop.Action{Type: desktop.Click, Button: b, Count: count}.At(x, y))
	return err
}

// MoveMouse moves the pointer to (x, y).
func (s *Sandbox) MoveMouse(ctx context.Context, x, y int) error {
	_, err := s.Act(ctx, desktop.Action{Type: desktop.Move}.At(x, y))
	return err
}

// MousePress presses button b where the pointer is and leaves it down; ""
// means the left button.
func (s *Sandbox) MousePress(ctx context.Context, b desktop.Button) error {
	_, err := s.Act(ctx, desktop.Action{Type: desktop.MouseDown, Button: b})
	return err
}

// MouseRelease releases button b where the pointer is; "" means the left
// button.
func (s *Sandbox) MouseRelease(ctx context.Context, b desktop.Button) error {
	_, err := s.Act(ctx, desktop.Action{Type: desktop.MouseUp, Button: b})
	return err
}

// Drag presses the left button at from, moves to to and releases it there.
// For a longer path or another button, Act with a drag action.
func (s *Sandbox) Drag(ctx context.Context, from, to desktop.Point) error {
	_, err := s.Act(ctx, desktop.Action{Type: desktop.Drag, Path: []desktop.Point{from, to}})
	return err
}

// Scroll turns the mouse wheel amount clicks in direction ("up", "down",
// "left" or "right") where the pointer is. As in E2B's SDK, an empty
// direction means "down" and an amount of 0 means 1.
func (s *Sandbox) Scroll(ctx context.Context, direction string, amount int) error {
	a, err := scrollAction(direction, amount)
	if err != nil {
		return err
	}
	_, err = s.Act(ctx, a)
	return err
}

// scrollAction turns a direction and an amount into a scroll action.
func scrollAction(direction string, amount int) (desktop.Action, error) {
	if amount < 0 {
		return desktop.Action{}, desktop.Errorf(desktop.CodeInvalid, "scroll amount must be 1 or more, got %d", amount)
	}
	if amount == 0 {
		amount = 1
	}
	a := desktop.Action{Type: desktop.Scroll}
	switch strings.ToLower(direction) {
	case "down", "":
		a.DY = amount
	case "up":
		a.DY = -amount
	case "right":
		a.DX = amount
	case "left":
		a.DX = -amount
	default:
		e := desktop.Errorf(desktop.CodeInvalid, "unknown scroll direction %q; use up, down, left or right", direction)
		e.Field = "direction"
		return desktop.Action{}, e
	}
	return a, nil
}

// Write types text as key strokes. Empty text does nothing.
func (s *Sandbox) Write(ctx context.Context, text string) error {
	if text == "" {
		return nil
	}
	_, err := s.Act(ctx, desktop.Action{Type: desktop.Type, Text: text})
	return err
}

// Press presses a key combination: the keys go down in order and come up
// in reverse, as in Press(ctx, "ctrl", "l"). One argument written with "+"
// ("ctrl+l") is split into its keys. Key names are X keysym names (Return,
// Page_Down, F5) or aliases (enter, ctrl, cmd, esc, page_down).
func (s *Sandbox) Press(ctx context.Context, keys ...string) error {
	if len(keys) == 1 && len(keys[0]) > 1 && strings.Contains(keys[0], "+") {
		keys = desktop.ParseCombo(keys[0])
	}
	_, err := s.Act(ctx, desktop.Action{Type: desktop.Key, Keys: keys})
	return err
}
