package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// Act runs one action (POST /v1/action) and returns what it reports.
func (s *Sandbox) Act(ctx context.Context, a desktop.Action) (*desktop.ActionResult, error) {
	var res desktop.ActionResult
	if err := s.t.call(ctx, http.MethodPost, "/v1/action", nil, a, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Do runs actions in order in one round trip; see DoBatch.
func (s *Sandbox) Do(ctx context.Context, actions ...desktop.Action) (*desktop.BatchResult, error) {
	return s.DoBatch(ctx, desktop.Batch{Actions: actions})
}

// DoBatch runs a batch (POST /v1/actions): its actions in order, then the
// settle wait and the screenshot when it asks for them. The batch stops at
// the first failure; then DoBatch returns both the partial result (the
// actions that completed) and the *desktop.Error, whose Index names the
// action that failed. The result is nil only when the agent gave no batch
// result at all (it could not be reached, or something else answered).
func (s *Sandbox) DoBatch(ctx context.Context, b desktop.Batch) (*desktop.BatchResult, error) {
	if b.Actions == nil {
		b.Actions = []desktop.Action{}
	}
	const path = "/v1/actions"
	resp, err := s.t.send(ctx, http.MethodPost, path, nil, b)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	ok := resp.StatusCode/100 == 2
	limit := int64(maxErrorBody)
	if ok {
		limit = 0 // a success may carry a large screenshot
	}
	body, err := readBody(resp, limit)
	if err != nil {
		return nil, s.t.transportError(ctx, http.MethodPost, s.t.base+path, err)
	}
	var wire struct {
		desktop.BatchResult
		Error *wireError `json:"error"` // shadows BatchResult.Error
	}
	if jerr := json.Unmarshal(body, &wire); jerr != nil {
		if ok {
			return nil, &desktop.Error{Code: desktop.CodeInternal, Index: -1,
				Message: fmt.Sprintf("client: POST %s%s: %s answer is not a batch result: %v", s.t.base, path, resp.Status, jerr)}
		}
		return nil, s.t.foreignError(http.MethodPost, path, resp, body)
	}
	res := &wire.BatchResult
	if wire.Error != nil && wire.Error.Code != "" {
		res.Error = wire.Error.toError()
		return res, res.Error
	}
	if !ok {
		return nil, s.t.foreignError(http.MethodPost, path, resp, body)
	}
	return res, nil
}

// Wait makes the desktop pause for d (a wait action on the agent), so that it
// is ordered with the calls around it. d is rounded up to whole milliseconds
// and may be at most a minute.
func (s *Sandbox) Wait(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return &desktop.Error{Code: desktop.CodeInvalid, Field: "duration_ms", Index: -1,
			Message: fmt.Sprintf("wait needs a duration of 0 or more, got %s", d)}
	}
	ms := int((d + time.Millisecond - 1) / time.Millisecond)
	_, err := s.Act(ctx, desktop.Action{Type: desktop.Wait, DurationMS: ms})
	return err
}
