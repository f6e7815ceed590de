package mcpserver

import (
	"context"
	"errors"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cubicle-dev/cubicle/desktop"
)

// settleIn are the options of every action tool: wait for the screen to
// stop changing, and look at it.
type settleIn struct {
	Screenshot bool `json:"screenshot,omitempty" jsonschema:"after the action, wait until the screen stops changing and return a screenshot of it"`
	SettleMS   int  `json:"settle_ms,omitempty" jsonschema:"after the action, wait until the screen has not changed for this many milliseconds (default 300 with screenshot, else no wait)"`
}

// settleDoc ends the description of every action tool.
const settleDoc = " Pass screenshot: true to get the screen back once it has stopped changing."

// Settle defaults and bounds, in milliseconds.
const (
	defaultQuietMS = 300
	maxQuietMS     = 10_000
	settleLimitMS  = 10_000 // how long to wait for a quiet screen at most
)

func refineSettle(p map[string]*jsonschema.Schema) {
	between(p["settle_ms"], 0, maxQuietMS)
}

// batch is the batch that runs actions with the settle options of in.
func (in settleIn) batch(actions ...desktop.Action) (desktop.Batch, error) {
	b := desktop.Batch{Actions: actions}
	if in.SettleMS < 0 || in.SettleMS > maxQuietMS {
		return b, invalid("settle_ms", "settle_ms must be 0 to %d, got %d", maxQuietMS, in.SettleMS)
	}
	if in.SettleMS > 0 || in.Screenshot {
		quiet := in.SettleMS
		if quiet == 0 {
			quiet = defaultQuietMS
		}
		b.Settle = &desktop.Settle{QuietMS: quiet, TimeoutMS: max(settleLimitMS, 2*quiet)}
	}
	if in.Screenshot {
		b.Screenshot = &desktop.ScreenshotOptions{}
	}
	return b, nil
}

// actionOut is what an action tool reports.
type actionOut struct {
	Done   string         `json:"done" jsonschema:"what was done"`
	Cursor *desktop.Point `json:"cursor,omitempty" jsonschema:"the pointer position afterwards"`
	PID    int            `json:"pid,omitempty" jsonschema:"the process started by open or launch_app"`
	// Settled is false when the screen was still changing at the deadline.
	Settled *bool `json:"settled,omitempty" jsonschema:"false when the screen was still changing when the wait for it ended"`
	// Screenshot describes the image returned with the result.
	Screenshot *screenshotOut `json:"screenshot,omitempty" jsonschema:"the size of the screenshot returned as an image"`
}

// act runs actions on the sandbox id (or the current one) as one batch,
// with the settle options of st, and reports the last action's result and
// the screenshot when one was asked for.
func (s *Server) act(ctx context.Context, req *mcp.CallToolRequest, id string, st settleIn, actions ...desktop.Action) (*mcp.CallToolResult, actionOut, error) {
	b, err := st.batch(actions...)
	if err != nil {
		return nil, actionOut{}, err
	}
	// Checked here for a quick, precise answer; the agent checks the
	// coordinates against the screen.
	if err := b.Validate(desktop.Limits{}); err != nil {
		return nil, actionOut{}, unindexed(err)
	}
	sb, err := s.sandbox(ctx, req, id)
	if err != nil {
		return nil, actionOut{}, err
	}
	res, err := sb.DoBatch(ctx, b)
	if err != nil {
		return nil, actionOut{}, unindexed(err)
	}
	out := actionOut{Done: describeAction(actions[len(actions)-1]), Settled: res.Settled}
	if n := len(res.Results); n > 0 {
		last := res.Results[n-1]
		out.Cursor, out.PID = last.Cursor, last.PID
	}
	var extra []mcp.Content
	if img := res.Screenshot; img != nil {
		out.Screenshot = &screenshotOut{Width: img.Width, Height: img.Height}
		extra = append(extra, pngContent(img.Data))
	}
	result, err := textResult(out, extra...)
	return result, out, err
}

// unindexed drops the batch index from an action's error: a tool runs one
// action, so "action 0:" would only be noise.
func unindexed(err error) error {
	var de *desktop.Error
	if errors.As(err, &de) && de.Index >= 0 {
		c := *de
		c.Index = -1
		return &c
	}
	return err
}
