package claudetool

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/cubicle-dev/cubicle/cua"
	"github.com/cubicle-dev/cubicle/desktop"
)

// ToolUse is a tool_use content block of a model's answer: the call's id,
// the tool's name and its input object.
type ToolUse struct {
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// ToolResult is a tool_result content block, the answer to one ToolUse; it
// marshals to the JSON the Messages API expects.
type ToolResult struct {
	Type      string    `json:"type"` // "tool_result"
	ToolUseID string    `json:"tool_use_id"`
	Content   []Content `json:"content,omitempty"`
	IsError   bool      `json:"is_error,omitempty"`
}

// Content is a block of a tool result: text or an image.
type Content struct {
	Type   string       `json:"type"` // "text" or "image"
	Text   string       `json:"text,omitempty"`
	Source *ImageSource `json:"source,omitempty"`
}

// ImageSource is the base64 data of an image block.
type ImageSource struct {
	Type      string `json:"type"`       // "base64"
	MediaType string `json:"media_type"` // "image/png" or "image/jpeg"
	Data      string `json:"data"`
}

// Image returns the result's first image, decoded, or nil.
func (r ToolResult) Image() []byte {
	for _, c := range r.Content {
		if c.Type == "image" && c.Source != nil {
			b, err := base64.StdEncoding.DecodeString(c.Source.Data)
			if err == nil {
				return b
			}
		}
	}
	return nil
}

// Run executes the tool calls of one model turn, in order, and returns one
// result per call. The calls become as few batch round trips to the desktop
// as possible: the actions of consecutive calls go in one batch, which ends
// with a settle wait (instead of a fixed sleep) and the one screenshot a
// result needs (a screenshot or zoom call, or the state of the screen after
// the last call). A call the desktop cannot do (an unknown action, a
// missing or mistyped field, a point outside the display, an unknown key)
// gets a result with IsError and a message that says what to change; the
// calls after it are not run. Run returns an error only when the desktop
// cannot be used (unreachable, unauthorized, failing).
func (t *Tool) Run(ctx context.Context, uses []ToolUse) ([]ToolResult, error) {
	calls := make([]call, len(uses))
	valid := len(uses)
	for i, u := range uses {
		calls[i] = t.translate(u)
		if calls[i].err != nil {
			valid = i
			break
		}
	}
	steps := make([]cua.Step, valid)
	acts := false
	for i := range steps {
		steps[i] = calls[i].step
		acts = acts || (len(steps[i].Actions) > 0 && !steps[i].Cursor)
	}
	opts := cua.RunOptions{Settle: t.cfg.Settle}
	if opts.Settle == nil {
		opts.Settle = &desktop.Settle{}
	}
	if acts && !t.cfg.NoScreenshot {
		opts.Final = t.scale.Screenshot(t.cfg.Format)
	}
	outs, err := cua.Run(ctx, t.d, steps, opts)
	if err != nil {
		return nil, fmt.Errorf("claudetool: %w", err)
	}
	res := make([]ToolResult, len(uses))
	for i, u := range uses {
		r := ToolResult{Type: "tool_result", ToolUseID: u.ID}
		switch {
		case i < valid:
			r = t.result(r, calls[i], outs[i])
		case i == valid:
			r.IsError = true
			r.Content = []Content{text(message(calls[i].err))}
		default:
			r.IsError = true
			r.Content = []Content{text(fmt.Sprintf("not run: an earlier call of this turn (tool_use %s) failed", uses[valid].ID))}
		}
		res[i] = r
	}
	return res, nil
}

// result fills in the result of a call that was run (or skipped by the
// desktop).
func (t *Tool) result(r ToolResult, c call, o cua.Outcome) ToolResult {
	if o.Err != nil {
		r.IsError = true
		r.Content = []Content{text(message(o.Err))}
		return r
	}
	switch {
	case c.step.Cursor && o.Cursor != nil:
		p := t.scale.ToDisplay(*o.Cursor)
		r.Content = append(r.Content, text(fmt.Sprintf("X=%d,Y=%d", p.X, p.Y)))
	case c.step.Image == nil:
		r.Content = append(r.Content, text(c.action+" done"))
	}
	if o.Image != nil {
		r.Content = append(r.Content, image(o.Image))
	}
	return r
}

func text(s string) Content { return Content{Type: "text", Text: s} }

func image(img *desktop.Image) Content {
	mt := "image/png"
	if img.Format == "jpeg" {
		mt = "image/jpeg"
	}
	return Content{Type: "image", Source: &ImageSource{
		Type: "base64", MediaType: mt, Data: base64.StdEncoding.EncodeToString(img.Data),
	}}
}
