package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/cubicle-dev/cubicle/desktop"
)

// maxInput bounds what is read from standard input for one argument.
const maxInput = 16 << 20

// parseCoord reads one coordinate: a whole number of pixels, 0 or more.
func parseCoord(name, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, usagef("%s must be a whole number of pixels, got %q", name, s)
	}
	if n < 0 {
		return 0, usagef("%s must be 0 or more, got %d", name, n)
	}
	return n, nil
}

// parsePoints reads X Y pairs; names are "x1", "y1", "x2", ... when numbered.
func parsePoints(args []string, numbered bool) ([]desktop.Point, error) {
	pts := make([]desktop.Point, 0, len(args)/2)
	for i := 0; i+1 < len(args); i += 2 {
		xn, yn := "X", "Y"
		if numbered {
			xn, yn = fmt.Sprintf("X%d", i/2+1), fmt.Sprintf("Y%d", i/2+1)
		}
		x, err := parseCoord(xn, args[i])
		if err != nil {
			return nil, err
		}
		y, err := parseCoord(yn, args[i+1])
		if err != nil {
			return nil, err
		}
		pts = append(pts, desktop.Point{X: x, Y: y})
	}
	return pts, nil
}

// optionalPos reads "[X Y]" into an action.
func optionalPos(args []string, a *desktop.Action) error {
	switch len(args) {
	case 0:
		return nil
	case 2:
		pts, err := parsePoints(args, false)
		if err != nil {
			return err
		}
		*a = a.At(pts[0].X, pts[0].Y)
		return nil
	}
	return usagef("takes X Y, or nothing to act where the pointer is; got %s", nArgs(len(args)))
}

// parseButton checks a --button value; "" is the left button.
func parseButton(s string) (desktop.Button, error) {
	b := desktop.Button(strings.ToLower(s))
	if b.X11Button() == 0 {
		return "", usagef("--button: unknown button %q; use left, right, middle, back or forward", s)
	}
	return b, nil
}

// parseModifiers splits "ctrl,shift" or "ctrl+shift" into key names.
func parseModifiers(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var keys []string
	for _, part := range strings.Split(s, ",") {
		for _, k := range desktop.ParseCombo(part) {
			if k != "" {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, usagef("--modifiers: no keys in %q; write them like ctrl,shift", s)
	}
	return keys, nil
}

// parseWindowID reads a window id, decimal or 0x hex.
func parseWindowID(s string) (uint32, error) {
	id, err := strconv.ParseUint(s, 0, 32)
	if err != nil || id == 0 {
		return 0, usagef("ID must be a window id from \"cubicle windows\" (decimal or 0x hex), got %q", s)
	}
	return uint32(id), nil
}

// parseRegion reads "X,Y,W,H".
func parseRegion(s string) (*desktop.Rect, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return nil, usagef("--region must be X,Y,W,H (4 numbers), got %q", s)
	}
	var v [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 0 {
			return nil, usagef("--region must be X,Y,W,H in whole pixels, got %q", s)
		}
		v[i] = n
	}
	if v[2] == 0 || v[3] == 0 {
		return nil, usagef("--region must have a width and a height, got %q", s)
	}
	return &desktop.Rect{X: v[0], Y: v[1], Width: v[2], Height: v[3]}, nil
}

// textArg returns s, or all of standard input when s is "-".
func (c *cmd) textArg(s string) (string, error) {
	if s != "-" {
		return s, nil
	}
	b, err := c.readStdin()
	return string(b), err
}

func (c *cmd) readStdin() ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(c.stdin, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(b) > maxInput {
		return nil, usagef("standard input has more than %d MiB", maxInput>>20)
	}
	return b, nil
}

// nArgs says "1 argument" or "n arguments".
func nArgs(n int) string {
	if n == 1 {
		return "1 argument"
	}
	return fmt.Sprintf("%d arguments", n)
}
