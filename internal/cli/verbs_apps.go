package cli

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/cubicle-dev/cubicle/client"
)

// maxTitle is the most characters of a title the window table shows.
const maxTitle = 48

func setupWindows(fs *flag.FlagSet) func(*cmd, []string) error {
	class := fs.String("class", "", "only windows whose WM_CLASS class or instance is `C` (case ignored)")
	title := fs.String("title", "", "only windows whose title contains `T`")
	return func(c *cmd, args []string) error {
		if len(args) > 0 {
			return usagef("takes no arguments, got %q; filter with --class or --title", args[0])
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		ws, err := c.sb.FindWindows(ctx, client.WindowFilter{Class: *class, Title: *title})
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(ws)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTITLE\tCLASS\tPID\tGEOMETRY\tFOCUSED")
		for _, w := range ws {
			pid, focused := "-", "no"
			if w.PID != 0 {
				pid = strconv.Itoa(w.PID)
			}
			if w.Focused {
				focused = "yes"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%dx%d+%d+%d\t%s\n", w.ID, cell(w.Title, maxTitle), cell(w.Class, maxTitle),
				pid, w.Width, w.Height, w.X, w.Y, focused)
		}
		return tw.Flush()
	}
}

// cell makes s fit one table cell: control characters become spaces, and a
// long text is cut to max characters.
func cell(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// windowArg reads the one ID argument of a verb.
func windowArg(args []string) (uint32, error) {
	if len(args) != 1 {
		return 0, usagef("takes one window ID, got %s", nArgs(len(args)))
	}
	return parseWindowID(args[0])
}

func setupWindowTitle(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		id, err := windowArg(args)
		if err != nil {
			return err
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		w, err := c.sb.GetWindow(ctx, id)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(w)
		}
		_, err = fmt.Fprintln(c.stdout, w.Title)
		return err
	}
}

func setupFocus(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		id, err := windowArg(args)
		if err != nil {
			return err
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		return c.sb.FocusWindow(ctx, id)
	}
}

// printPID prints the pid of a started process.
func (c *cmd) printPID(pid int) error {
	if c.json {
		return c.printJSON(struct {
			PID int `json:"pid"`
		}{pid})
	}
	_, err := fmt.Fprintln(c.stdout, pid)
	return err
}

func setupLaunch(fs *flag.FlagSet) func(*cmd, []string) error {
	command := fs.Bool("command", false, "start the program ARGV (after --) directly, without a shell")
	return func(c *cmd, args []string) error {
		ctx, cancel := c.callCtx()
		defer cancel()
		var (
			pid int
			err error
		)
		switch {
		case *command && len(args) == 0:
			return usagef("--command needs the program and its arguments after --")
		case *command:
			pid, err = c.sb.LaunchCommand(ctx, args...)
		case len(args) == 1 || len(args) == 2:
			if strings.Contains(args[0], "/") {
				return usagef("APP is a .desktop name such as firefox-esr, not a path; for a program use --command -- %s", args[0])
			}
			pid, err = c.sb.Launch(ctx, args[0], args[1:]...)
		default:
			return usagef("takes APP and an optional URI, got %s; for a program use --command -- ARGV...", nArgs(len(args)))
		}
		if err != nil {
			return err
		}
		return c.printPID(pid)
	}
}

func setupOpen(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		if len(args) != 1 || args[0] == "" {
			return usagef("takes one TARGET, a file path or URL; got %s", nArgs(len(args)))
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		pid, err := c.sb.Open(ctx, args[0])
		if err != nil {
			return err
		}
		return c.printPID(pid)
	}
}

func setupClipboard(fs *flag.FlagSet) func(*cmd, []string) error {
	return func(c *cmd, args []string) error {
		ctx, cancel := c.callCtx()
		defer cancel()
		switch {
		case len(args) == 0:
			text, err := c.sb.Clipboard(ctx)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(struct {
					Text string `json:"text"`
				}{text})
			}
			_, err = fmt.Fprint(c.stdout, text)
			return err
		case args[0] == "set" && len(args) == 2:
			text, err := c.textArg(args[1])
			if err != nil {
				return err
			}
			return c.sb.SetClipboard(ctx, text)
		case args[0] == "set":
			return usagef("set takes one TEXT, or \"-\" for standard input; got %s", nArgs(len(args)-1))
		}
		return usagef("unknown command %q; use \"clipboard\" to print it or \"clipboard set TEXT\"", args[0])
	}
}
