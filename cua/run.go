package cua

import (
	"context"
	"errors"
	"fmt"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Batcher runs a batch of actions on a desktop; *client.Sandbox is one.
type Batcher interface {
	DoBatch(ctx context.Context, b desktop.Batch) (*desktop.BatchResult, error)
}

// Step is one model tool call (or one action of a call) translated into
// desktop actions.
type Step struct {
	Actions []desktop.Action
	// Image, when set, asks for a screenshot taken right after the step.
	Image *desktop.ScreenshotOptions
	// Cursor asks for the pointer position after the step; the step's last
	// action must be a pointer action (a move without a position reads it).
	Cursor bool
}

// Outcome is what became of one step.
type Outcome struct {
	// Err is why the step failed or did not run; nil when it ran.
	Err error
	// Image is the screenshot the step asked for, or the final one.
	Image *desktop.Image
	// Cursor is the pointer position on the screen, when asked for.
	Cursor *desktop.Point
}

// RunOptions shape Run.
type RunOptions struct {
	// Settle waits, after the actions of a batch, until the screen is quiet.
	Settle *desktop.Settle
	// Final, when set, is a screenshot taken after the last step unless that
	// step took one itself; it goes to the last step's outcome.
	Final *desktop.ScreenshotOptions
}

// errNotRun is the cause of a step skipped after a failure.
var errNotRun = errors.New("not run")

// Run runs steps in order in as few batches as possible: a batch ends with
// the step that asks for an image, whose screenshot the agent takes after
// the settle wait, so that a turn of clicks and keys ending in a screenshot
// is one round trip. A step that fails stops the run: it gets the error,
// the steps after it an error saying they did not run. Run returns an error
// only when the desktop could not run a batch at all (unreachable,
// unauthorized, an internal failure); then the outcomes are nil.
func Run(ctx context.Context, d Batcher, steps []Step, o RunOptions) ([]Outcome, error) {
	out := make([]Outcome, len(steps))
	start := 0
	for start < len(steps) {
		end := start
		for end < len(steps)-1 && steps[end].Image == nil {
			end++
		}
		b := desktop.Batch{Actions: []desktop.Action{}}
		owner := make([]int, 0) // step of each action
		for i := start; i <= end; i++ {
			b.Actions = append(b.Actions, steps[i].Actions...)
			for range steps[i].Actions {
				owner = append(owner, i)
			}
		}
		if len(b.Actions) > 0 {
			b.Settle = o.Settle
		}
		b.Screenshot = steps[end].Image
		if b.Screenshot == nil && end == len(steps)-1 {
			b.Screenshot = o.Final
		}
		res, err := d.DoBatch(ctx, b)
		if err != nil {
			var de *desktop.Error
			if !errors.As(err, &de) || !errors.Is(err, desktop.ErrInvalid) || res == nil {
				return nil, fmt.Errorf("run batch: %w", err)
			}
			failed := end // a batch-level error (the screenshot) belongs to the last step
			if de.Index >= 0 && de.Index < len(owner) {
				failed = owner[de.Index]
			}
			for i := start; i < failed; i++ {
				if stepEnd(steps, i, start) > res.Completed {
					out[i].Err = fmt.Errorf("%w: a later action of this batch was refused before any ran", errNotRun)
				}
			}
			e := *de
			e.Index = -1
			out[failed].Err = &e
			for i := failed + 1; i < len(steps); i++ {
				out[i].Err = fmt.Errorf("%w: an earlier action failed", errNotRun)
			}
			return out, nil
		}
		first := 0
		for i := start; i <= end; i++ {
			n := len(steps[i].Actions)
			if steps[i].Cursor && n > 0 && first+n-1 < len(res.Results) {
				if c := res.Results[first+n-1].Cursor; c != nil {
					p := *c
					out[i].Cursor = &p
				}
			}
			first += n
		}
		out[end].Image = res.Screenshot
		start = end + 1
	}
	return out, nil
}

// stepEnd is the number of actions of the batch that started at step start
// up to and including step i.
func stepEnd(steps []Step, i, start int) int {
	n := 0
	for j := start; j <= i; j++ {
		n += len(steps[j].Actions)
	}
	return n
}
