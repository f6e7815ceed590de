package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// shotInfo is what screenshot prints under --json.
type shotInfo struct {
	Path   string `json:"path"`
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int    `json:"bytes"`
	Cached bool   `json:"cached"`
}

func setupScreenshot(fs *flag.FlagSet) func(*cmd, []string) error {
	var out string
	fs.StringVar(&out, "o", "", "write the picture to `FILE`, \"-\" for standard output (default screenshot.png or .jpg)")
	fs.StringVar(&out, "output", "", "same as -o `FILE`")
	format := fs.String("format", "", "picture `FORMAT`: png or jpeg (default: from the file name, else png)")
	quality := fs.Int("quality", 0, "JPEG quality `N`, 1 to 100 (default 80)")
	region := fs.String("region", "", "capture only the rectangle `X,Y,W,H`")
	width := fs.Int("width", 0, "scale to `N` pixels wide (the height follows unless given)")
	height := fs.Int("height", 0, "scale to `N` pixels high")
	cursor := fs.Bool("cursor", false, "draw the mouse pointer in")
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments, got %q; name the file with -o", args[0])
		}
		o := desktop.ScreenshotOptions{Format: strings.ToLower(*format), Quality: *quality,
			Width: *width, Height: *height, Cursor: *cursor}
		if o.Format == "" {
			switch strings.ToLower(filepath.Ext(out)) {
			case ".jpg", ".jpeg":
				o.Format = "jpeg"
			}
		}
		if *region != "" {
			r, err := parseRegion(*region)
			if err != nil {
				return err
			}
			o.Region = r
		}
		if err := o.Validate(desktop.Size{}); err != nil {
			var de *desktop.Error
			if errors.As(err, &de) {
				return usagef("--%s: %s", de.Field, de.Message)
			}
			return usagef("%v", err)
		}
		if out == "" {
			out = "screenshot.png"
			if o.Format == "jpeg" {
				out = "screenshot.jpg"
			}
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		img, err := c.sb.ScreenshotWith(ctx, o)
		if err != nil {
			return err
		}
		if out == "-" {
			_, err := c.stdout.Write(img.Data)
			return err
		}
		if err := os.WriteFile(out, img.Data, 0o644); err != nil {
			return fmt.Errorf("write the screenshot: %w", err)
		}
		info := shotInfo{Path: out, Format: img.Format, Width: img.Width, Height: img.Height, Bytes: len(img.Data), Cached: img.Cached}
		if c.json {
			return c.printJSON(info)
		}
		_, err = fmt.Fprintf(c.stdout, "%s: %s %dx%d, %d bytes\n", info.Path, info.Format, info.Width, info.Height, info.Bytes)
		return err
	}
}

func setupCursor(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments, got %s", nArgs(len(args)))
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		p, err := c.sb.GetCursorPosition(ctx)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(p)
		}
		_, err = fmt.Fprintf(c.stdout, "%d %d\n", p.X, p.Y)
		return err
	}
}

func setupScreen(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments, got %s", nArgs(len(args)))
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		s, err := c.sb.GetScreenSize(ctx)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(s)
		}
		_, err = fmt.Fprintf(c.stdout, "%dx%d\n", s.Width, s.Height)
		return err
	}
}

func setupReady(fs *flag.FlagSet) func(*cmd, []string) error {
	wait := fs.Duration("wait", 0, "wait up to `DURATION` (such as 60s) for the desktop to be ready")
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			if _, err := time.ParseDuration(args[0]); err == nil && len(args) == 1 {
				return usagef("takes no arguments; did you mean --wait %s?", args[0])
			}
			return usagef("takes no arguments, got %s", nArgs(len(args)))
		}
		if *wait < 0 {
			return usagef("--wait must be 0 or more, got %s", *wait)
		}
		if t := *wait + 15*time.Second; c.timeout < t {
			c.timeout = t
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		var (
			rd  desktop.Readiness
			err error
		)
		if *wait > 0 {
			rd, err = c.sb.WaitReady(ctx, *wait)
		} else {
			rd, err = c.sb.Ready(ctx)
		}
		var de *desktop.Error
		if err != nil && !(errors.As(err, &de) && de.Code == desktop.CodeTimeout) {
			return err // no answer about readiness at all
		}
		if c.json {
			if perr := c.printJSON(rd); perr != nil {
				return perr
			}
		} else {
			printReadiness(c, rd)
		}
		if err != nil {
			return err
		}
		if !rd.Ready {
			return desktop.Errorf(desktop.CodeNotReady, "the desktop is not ready: %s", orNone(rd.Reason))
		}
		return nil
	}
}

func printReadiness(c *cmd, rd desktop.Readiness) {
	switch {
	case rd.Ready && rd.Screen != nil:
		fmt.Fprintf(c.stdout, "ready: %dx%d\n", rd.Screen.Width, rd.Screen.Height)
	case rd.Ready:
		fmt.Fprintln(c.stdout, "ready")
	default:
		fmt.Fprintf(c.stdout, "not ready: %s\n", orNone(rd.Reason))
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	for _, p := range rd.Parts {
		state := "stopped"
		if p.Running {
			state = "running"
		}
		line := fmt.Sprintf("  %s\t%s\tpid %d\trestarts %d", p.Name, state, p.PID, p.Restarts)
		if p.Error != "" {
			line += "\t" + p.Error
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
}

func orNone(reason string) string {
	if reason == "" {
		return "no reason given"
	}
	return reason
}
