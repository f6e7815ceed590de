package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/cubicle-dev/cubicle/desktop"
)

// maxReadyWait is the longest wait asked of the agent in one request.
const maxReadyWait = 30 * time.Second

var errNotReady = errors.New("sandbox: the desktop is not ready")

// waitReady polls the agent at addr until its desktop is ready, letting
// the agent hold each request (GET /v1/ready?wait=). In DisplayExternal
// mode there is no desktop to wait for: the sandbox is ready once the
// agent's envd answers (GET /health), so that the client's first command
// finds it.
func (m *Manager) waitReady(ctx context.Context, addr netip.Addr, token string, mode DisplayMode) error {
	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.ReadyTimeout, errNotReady)
	defer cancel()
	path := "/v1/ready"
	if mode == DisplayExternal {
		path = "/health"
	}
	url := "http://" + netip.AddrPortFrom(addr, AgentPort).String() + path
	pause := 50 * time.Millisecond
	last := "the agent has not answered yet"
	for {
		wait := maxReadyWait
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		ready, reason, err := m.probe(ctx, url, wait, token)
		var fatal *desktop.Error
		switch {
		case ready:
			return nil
		case errors.As(err, &fatal):
			return err
		case err != nil:
			last = err.Error()
		default:
			last = reason
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			if context.Cause(ctx) == errNotReady {
				return desktop.Errorf(desktop.CodeTimeout, "the desktop did not become ready within %s: %s", m.cfg.ReadyTimeout, last)
			}
			return fmt.Errorf("wait for the desktop: %w", context.Cause(ctx))
		}
		pause = min(2*pause, time.Second)
	}
}

// probe asks the agent once whether the desktop is ready. A *desktop.Error
// means asking again is of no use.
func (m *Manager) probe(ctx context.Context, url string, wait time.Duration, token string) (bool, string, error) {
	if wait = wait.Truncate(time.Millisecond); wait > 0 {
		url += "?wait=" + wait.String()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, "", err
	}
	req.Header.Set("X-Access-Token", token)
	resp, err := m.agents.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	var body struct {
		Ready  bool   `json:"ready"`
		Reason string `json:"reason"`
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<16))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return true, "", nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, "", desktop.Errorf(desktop.CodeInternal, "the agent refused the sandbox's access token (%s)", resp.Status)
	case http.StatusServiceUnavailable:
		if err := dec.Decode(&body); err != nil || body.Reason == "" {
			return false, "the agent gave no reason", nil
		}
		return false, body.Reason, nil
	}
	return false, "", fmt.Errorf("the agent answered %s", resp.Status)
}
