package openaicua

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cubicle-dev/cubicle/cua"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Call is a computer_call output item of a response: one action (the
// computer_use_preview shape) or a list of actions (the computer tool's).
type Call struct {
	Type                string            `json:"type"` // "computer_call"
	ID                  string            `json:"id,omitempty"`
	CallID              string            `json:"call_id"`
	Action              json.RawMessage   `json:"action,omitempty"`
	Actions             []json.RawMessage `json:"actions,omitempty"`
	PendingSafetyChecks []SafetyCheck     `json:"pending_safety_checks,omitempty"`
	Status              string            `json:"status,omitempty"`
}

// SafetyCheck is a pending (or acknowledged) safety check of a call.
type SafetyCheck struct {
	ID      string `json:"id"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Output is the computer_call_output input item that answers a call; it
// marshals to the JSON the Responses API expects.
type Output struct {
	Type                     string        `json:"type"` // "computer_call_output"
	CallID                   string        `json:"call_id"`
	Output                   Screenshot    `json:"output"`
	AcknowledgedSafetyChecks []SafetyCheck `json:"acknowledged_safety_checks,omitempty"`
}

// Screenshot is the output of a call: a screenshot as a data URL.
type Screenshot struct {
	Type     string `json:"type"` // "computer_screenshot"
	ImageURL string `json:"image_url"`
}

// Image returns the decoded screenshot of the output, or nil.
func (o *Output) Image() []byte {
	_, data, ok := strings.Cut(o.Output.ImageURL, ";base64,")
	if !ok {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil
	}
	return b
}

// Run executes a computer_call: its pending safety checks go to
// Config.Approve first; then all its actions run in one batch round trip to
// the desktop, which waits for the screen to settle and takes the
// screenshot of the output. A call with an unknown action, a missing or
// mistyped field, a point outside the display or an unknown key runs no
// action and gives an error of class desktop.ErrInvalid that says which
// action is wrong; Screenshot then still answers the call.
func (t *Tool) Run(ctx context.Context, c Call) (*Output, error) {
	if c.CallID == "" {
		return nil, cua.Invalid("call_id", "openaicua: computer_call has no call_id")
	}
	steps, err := t.translate(c)
	if err != nil {
		return nil, fmt.Errorf("openaicua: call %s: %w", c.CallID, err)
	}
	out := &Output{Type: "computer_call_output", CallID: c.CallID}
	if len(c.PendingSafetyChecks) > 0 {
		if err := t.approve(ctx, c.PendingSafetyChecks); err != nil {
			return nil, fmt.Errorf("openaicua: call %s: %w", c.CallID, err)
		}
		out.AcknowledgedSafetyChecks = c.PendingSafetyChecks
	}
	outs, err := cua.Run(ctx, t.d, steps, cua.RunOptions{Settle: t.settle(), Final: t.scale.Screenshot(t.cfg.Format)})
	if err != nil {
		return nil, fmt.Errorf("openaicua: call %s: %w", c.CallID, err)
	}
	for i, o := range outs {
		if o.Err != nil {
			return nil, fmt.Errorf("openaicua: call %s: %s: %w", c.CallID, actionName(c, i), o.Err)
		}
	}
	img := outs[len(outs)-1].Image
	if img == nil {
		return nil, fmt.Errorf("openaicua: call %s: the desktop returned no screenshot", c.CallID)
	}
	out.Output = screenshot(img)
	return out, nil
}

// Screenshot answers a call with a screenshot of the screen as it is,
// without acting: for a call that Run refused.
func (t *Tool) Screenshot(ctx context.Context, callID string) (*Output, error) {
	res, err := t.d.DoBatch(ctx, desktop.Batch{Actions: []desktop.Action{}, Screenshot: t.scale.Screenshot(t.cfg.Format)})
	if err != nil {
		return nil, fmt.Errorf("openaicua: screenshot: %w", err)
	}
	if res.Screenshot == nil {
		return nil, errors.New("openaicua: screenshot: the desktop returned none")
	}
	return &Output{Type: "computer_call_output", CallID: callID, Output: screenshot(res.Screenshot)}, nil
}

func (t *Tool) settle() *desktop.Settle {
	if t.cfg.Settle != nil {
		return t.cfg.Settle
	}
	return &desktop.Settle{}
}

func (t *Tool) approve(ctx context.Context, checks []SafetyCheck) error {
	ids := make([]string, len(checks))
	for i, c := range checks {
		ids[i] = c.ID
		if c.Code != "" {
			ids[i] += " (" + c.Code + ")"
		}
	}
	list := strings.Join(ids, ", ")
	if t.cfg.Approve == nil {
		return fmt.Errorf("%w: %s: no approval hook is set, so no action ran", ErrRefused, list)
	}
	if err := t.cfg.Approve(ctx, checks); err != nil {
		return fmt.Errorf("%w: %s: no action ran: %w", ErrRefused, list, err)
	}
	return nil
}

func screenshot(img *desktop.Image) Screenshot {
	mt := "image/png"
	if img.Format == "jpeg" {
		mt = "image/jpeg"
	}
	return Screenshot{Type: "computer_screenshot",
		ImageURL: "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(img.Data)}
}

// actionName names action i of a call in messages.
func actionName(c Call, i int) string {
	if len(c.Actions) > 0 {
		return fmt.Sprintf("actions[%d]", i)
	}
	return "action"
}
