package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// maxServerWait is the longest wait the agent accepts in one /v1/ready call.
const maxServerWait = 5 * time.Minute

// Ready reports whether the desktop is ready: X answers, the window manager
// and the panel are up and the screen is not blank. A desktop that is still
// starting is not an error: Ready is false and Reason says why.
func (s *Sandbox) Ready(ctx context.Context) (desktop.Readiness, error) {
	return s.ready(ctx, "")
}

// WaitReady waits up to timeout for the desktop to be ready, letting the
// agent hold each request until then (GET /v1/ready?wait=). While the agent
// cannot be reached, for instance because it is still starting, it asks
// again. When time runs out it returns the last readiness and an error of
// class ErrTimeout that says why the desktop is not ready.
func (s *Sandbox) WaitReady(ctx context.Context, timeout time.Duration) (desktop.Readiness, error) {
	deadline := time.Now().Add(timeout)
	pause := 50 * time.Millisecond
	var (
		last    desktop.Readiness
		lastErr error
	)
	wait := timeout // the first request asks for all of it
	for {
		q := ""
		if wait = min(wait, maxServerWait); wait > 0 {
			q = wait.String()
		}
		r, err := s.ready(ctx, q)
		switch {
		case err == nil && r.Ready:
			return r, nil
		case err == nil:
			last, lastErr = r, nil
		case errors.Is(err, desktop.ErrUnavailable) && ctx.Err() == nil:
			lastErr = err // the agent is starting or restarting
		default:
			return last, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return last, notReadyError(timeout, last, lastErr)
		}
		// Ask again after a pause, in case the agent answered early.
		t := time.NewTimer(min(pause, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return last, contextError("client: wait for the desktop", ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
		wait = time.Until(deadline).Round(time.Millisecond)
	}
}

func notReadyError(timeout time.Duration, last desktop.Readiness, lastErr error) error {
	if lastErr != nil {
		return &callError{msg: fmt.Sprintf("client: the desktop is not ready after %s: %v", timeout, lastErr),
			class: desktop.ErrTimeout, cause: lastErr}
	}
	reason := last.Reason
	if reason == "" {
		reason = "the agent gave no reason"
	}
	return desktop.Errorf(desktop.CodeTimeout, "the desktop is not ready after %s: %s", timeout, reason)
}

// contextError wraps the error of an ended context; a deadline also has
// class ErrTimeout.
func contextError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &callError{msg: fmt.Sprintf("%s: %v", op, err), class: desktop.ErrTimeout, cause: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}
