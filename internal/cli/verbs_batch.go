package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cubicle-dev/cubicle/desktop"
)

func setupDo(fs *flag.FlagSet) func(*cmd, []string) error {
	shotOut := fs.String("screenshot-out", "", "write the batch's screenshot to `FILE` (asks for one if the batch does not)")
	return func(c *cmd, args []string) error {
		if len(args) != 1 {
			return usagef("takes one FILE.json, or \"-\" for standard input; got %s", nArgs(len(args)))
		}
		var (
			data []byte
			err  error
		)
		name := args[0]
		if name == "-" {
			name = "standard input"
			data, err = c.readStdin()
		} else {
			data, err = os.ReadFile(name)
			if err != nil {
				return usagef("read the batch: %v", err)
			}
		}
		if err != nil {
			return err
		}
		b, err := parseBatch(data)
		if err != nil {
			return usagef("%s: %v", name, err)
		}
		if *shotOut != "" && b.Screenshot == nil {
			b.Screenshot = &desktop.ScreenshotOptions{}
		}
		ctx, cancel := c.callCtx()
		defer cancel()
		res, err := c.sb.DoBatch(ctx, b)
		if res == nil {
			return err
		}
		if *shotOut != "" && res.Screenshot != nil {
			if werr := os.WriteFile(*shotOut, res.Screenshot.Data, 0o644); werr != nil {
				return fmt.Errorf("write the screenshot: %w", werr)
			}
		}
		if c.json {
			if perr := c.printJSON(jsonBatch(res, *shotOut)); perr != nil {
				return perr
			}
			return err
		}
		printBatch(c, b, res, *shotOut)
		return err
	}
}

// shownImage is a batch screenshot as --json prints it: written to a file,
// it is named instead of included.
type shownImage struct {
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Cached bool   `json:"cached"`
	File   string `json:"file,omitempty"`
	Data   []byte `json:"data,omitempty"`
}

// jsonBatch is what do prints under --json.
func jsonBatch(res *desktop.BatchResult, shotOut string) any {
	img := res.Screenshot
	if img == nil {
		return res
	}
	shown := &shownImage{Format: img.Format, Width: img.Width, Height: img.Height, Cached: img.Cached, File: shotOut}
	if shotOut == "" {
		shown.Data = img.Data
	}
	return struct {
		*desktop.BatchResult
		Screenshot *shownImage `json:"screenshot,omitempty"`
	}{res, shown}
}

// parseBatch reads a batch object, or a bare array of actions, strictly.
func parseBatch(data []byte) (desktop.Batch, error) {
	var b desktop.Batch
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return b, errors.New("it is empty; write a JSON object {\"actions\": [...]} or an array of actions")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var err error
	if data[0] == '[' {
		err = dec.Decode(&b.Actions)
	} else {
		err = dec.Decode(&b)
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:se.Offset], []byte("\n"))
			return b, fmt.Errorf("not valid JSON at line %d: %v", line, err)
		}
		return b, fmt.Errorf("not a batch: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return b, errors.New("there is more after the batch; write one JSON value")
	}
	return b, nil
}

// printBatch prints one line per action that ran, then a summary.
func printBatch(c *cmd, b desktop.Batch, res *desktop.BatchResult, shotOut string) {
	tw := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	for _, r := range res.Results {
		var notes []string
		if r.Cursor != nil {
			notes = append(notes, fmt.Sprintf("cursor %d,%d", r.Cursor.X, r.Cursor.Y))
		}
		if r.PID != 0 {
			notes = append(notes, fmt.Sprintf("pid %d", r.PID))
		}
		if r.Settled != nil && !*r.Settled {
			notes = append(notes, "did not settle")
		}
		line := fmt.Sprintf("%d\t%s\t%.1f ms", r.Index, r.Type, r.DurationMS)
		if len(notes) > 0 {
			line += "\t" + strings.Join(notes, ", ")
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	fmt.Fprintf(c.stdout, "%d of %d actions done in %.1f ms\n", res.Completed, len(b.Actions), res.DurationMS)
	if res.Settled != nil && !*res.Settled {
		fmt.Fprintln(c.stdout, "the screen did not settle before the timeout")
	}
	if img := res.Screenshot; img != nil {
		where := "not written; use --screenshot-out FILE"
		if shotOut != "" {
			where = shotOut
		}
		fmt.Fprintf(c.stdout, "screenshot: %s %dx%d, %d bytes: %s\n", img.Format, img.Width, img.Height, len(img.Data), where)
	}
}
