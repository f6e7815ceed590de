package cli

import (
	"flag"
	"strconv"
	"strings"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// act runs one action; under --json it prints the result.
func (c *cmd) act(a desktop.Action) error {
	ctx, cancel := c.callCtx()
	defer cancel()
	res, err := c.sb.Act(ctx, a)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(res)
	}
	return nil
}

func setupClick(fs *flag.FlagSet) func(*cmd, []string) error {
	button := fs.String("button", "", "mouse button `B`: left (default), right, middle, back or forward")
	double := fs.Bool("double", false, "double-click")
	triple := fs.Bool("triple", false, "triple-click")
	count := fs.Int("count", 0, "click `N` times (1 to 10)")
	mods := fs.String("modifiers", "", "keys `K,K` held during the click, such as ctrl,shift")
	return func(c *cmd, args []string) error {
		a := desktop.Action{Type: desktop.Click}
		if err := optionalPos(args, &a); err != nil {
			return err
		}
		set := 0
		for _, on := range []bool{*double, *triple, *count != 0} {
			if on {
				set++
			}
		}
		if set > 1 {
			return usagef("use one of --double, --triple and --count")
		}
		switch {
		case *double:
			a.Count = 2
		case *triple:
			a.Count = 3
		case *count < 0 || *count > desktop.MaxClicks:
			return usagef("--count must be 1 to %d, got %d", desktop.MaxClicks, *count)
		default:
			a.Count = *count
		}
		if err := buttonAndModifiers(&a, *button, *mods); err != nil {
			return err
		}
		return c.act(a)
	}
}

func setupMove(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) != 2 {
			return usagef("takes X Y, got %s", nArgs(len(args)))
		}
		pts, err := parsePoints(args, false)
		if err != nil {
			return err
		}
		return c.act(desktop.Action{Type: desktop.Move}.At(pts[0].X, pts[0].Y))
	}
}

func setupMouseButton(name string) func(fs *flag.FlagSet) func(*cmd, []string) error {
	typ := desktop.MouseDown
	if name == "mouseup" {
		typ = desktop.MouseUp
	}
	return func(fs *flag.FlagSet) func(*cmd, []string) error {
		button := fs.String("button", "", "mouse button `B`: left (default), right, middle, back or forward")
		return func(c *cmd, args []string) error {
			a := desktop.Action{Type: typ}
			if err := optionalPos(args, &a); err != nil {
				return err
			}
			if *button != "" {
				b, err := parseButton(*button)
				if err != nil {
					return err
				}
				a.Button = b
			}
			return c.act(a)
		}
	}
}

func setupDrag(fs *flag.FlagSet) func(*cmd, []string) error {
	button := fs.String("button", "", "mouse button `B`: left (default), right, middle, back or forward")
	mods := fs.String("modifiers", "", "keys `K,K` held during the drag, such as shift")
	return func(c *cmd, args []string) error {
		if len(args) < 4 {
			return usagef("needs at least two points, X1 Y1 X2 Y2; got %d numbers", len(args))
		}
		if len(args)%2 != 0 {
			return usagef("takes X Y pairs; got an odd count of numbers (%d)", len(args))
		}
		pts, err := parsePoints(args, true)
		if err != nil {
			return err
		}
		a := desktop.Action{Type: desktop.Drag, Path: pts}
		if err := buttonAndModifiers(&a, *button, *mods); err != nil {
			return err
		}
		return c.act(a)
	}
}

func setupScroll(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usagef("takes a direction (up, down, left or right) and an optional count, got %s", nArgs(len(args)))
		}
		n := 1
		if len(args) == 2 {
			var err error
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
				return usagef("N must be a whole number of wheel clicks, 1 or more; got %q", args[1])
			}
		}
		a := desktop.Action{Type: desktop.Scroll}
		switch strings.ToLower(args[0]) {
		case "down":
			a.DY = n
		case "up":
			a.DY = -n
		case "right":
			a.DX = n
		case "left":
			a.DX = -n
		default:
			return usagef("unknown direction %q; use up, down, left or right", args[0])
		}
		return c.act(a)
	}
}

func setupType(fs *flag.FlagSet) func(*cmd, []string) error {
	paste := fs.Bool("paste", false, "put the text on the clipboard and press ctrl+v instead of typing it")
	return func(c *cmd, args []string) error {
		if len(args) != 1 {
			return usagef("takes one TEXT argument (quote it), or \"-\" for standard input; got %s", nArgs(len(args)))
		}
		text, err := c.textArg(args[0])
		if err != nil {
			return err
		}
		if text == "" {
			return usagef("there is no text to type")
		}
		return c.act(desktop.Action{Type: desktop.Type, Text: text, Paste: *paste})
	}
}

func setupKey(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) == 0 {
			return usagef("needs at least one combination, such as ctrl+l or Return")
		}
		acts := make([]desktop.Action, len(args))
		for i, s := range args {
			keys := desktop.ParseCombo(s)
			for _, k := range keys {
				if k == "" {
					return usagef("combination %q has an empty key", s)
				}
			}
			if len(keys) == 0 {
				return usagef("combination %d is empty", i+1)
			}
			acts[i] = desktop.Action{Type: desktop.Key, Keys: keys}
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		res, err := c.sb.Do(ctx, acts...)
		if c.json && res != nil {
			if perr := c.printJSON(res); err == nil {
				err = perr
			}
		}
		return err
	}
}

func setupWait(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) != 1 {
			return usagef("takes MS, a number of milliseconds; got %s", nArgs(len(args)))
		}
		ms, err := strconv.Atoi(args[0])
		if err != nil {
			d, derr := time.ParseDuration(args[0])
			if derr != nil {
				return usagef("MS must be a whole number of milliseconds (or a duration such as 1.5s), got %q", args[0])
			}
			ms = int((d + time.Millisecond - 1) / time.Millisecond)
		}
		if ms < 0 || ms > desktop.MaxDurationMS {
			return usagef("MS must be 0 to %d, got %d", desktop.MaxDurationMS, ms)
		}
		if t := time.Duration(ms)*time.Millisecond + 5*time.Second; c.timeout < t {
			c.timeout = t
		}
		return c.act(desktop.Action{Type: desktop.Wait, DurationMS: ms})
	}
}

// buttonAndModifiers sets the --button and --modifiers flags on a.
func buttonAndModifiers(a *desktop.Action, button, mods string) error {
	var err error
	if button != "" {
		if a.Button, err = parseButton(button); err != nil {
			return err
		}
	}
	a.Modifiers, err = parseModifiers(mods)
	return err
}
