package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cubicle-dev/cubicle/apitype"
	"github.com/cubicle-dev/cubicle/desktop"
)

// Resize modes of a live view.
const (
	ResizeOff   = apitype.ResizeOff   // the desktop at its own size
	ResizeScale = apitype.ResizeScale // scaled to fit the browser window (default)
)

// StreamURLOptions shape a live-view URL.
type StreamURLOptions struct {
	// ViewOnly makes a URL that shows the desktop and drops the viewer's
	// input; the server enforces it.
	ViewOnly bool
	// TTL is how long the URL works (rounded up to seconds); zero takes
	// the server's default (1 hour).
	TTL time.Duration
	// NoAutoConnect makes the page wait for a click before it connects.
	NoAutoConnect bool
	// Resize is ResizeOff or ResizeScale (default).
	Resize string
	// Window, when not 0, shows only this X window (see Windows).
	Window uint32
}

// StreamURL is a live view of a sandbox, for a browser: URL opens it,
// WebSocketURL speaks RFB over WebSocket for other VNC clients, and
// TokenID names it for RevokeStreamURL.
type StreamURL = apitype.StreamURL

// StreamURL returns a new URL of a live view of the sandbox in the
// browser, signed by the server for this sandbox, one mode and a limited
// time. Anyone holding it can open it until it expires or is revoked, so
// hand it out like a password. Several viewers may watch at once.
func (s *Sandbox) StreamURL(ctx context.Context, o StreamURLOptions) (*StreamURL, error) {
	if s.ctl == nil {
		return nil, errNoServer("StreamURL")
	}
	ttl, err := seconds("ttl", o.TTL)
	if err != nil {
		return nil, err
	}
	autoConnect := !o.NoAutoConnect
	body := apitype.StreamURLRequest{ViewOnly: o.ViewOnly, TTLS: ttl, AutoConnect: &autoConnect, Resize: o.Resize, WindowID: o.Window}
	path, err := sandboxPath(s.ctl.id, "/stream")
	if err != nil {
		return nil, err
	}
	var u StreamURL
	if err := s.ctl.srv.t.call(ctx, http.MethodPost, path, nil, body, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// RevokeStreamURL makes the URL with tokenID stop working and closes the
// live views opened with it.
func (s *Sandbox) RevokeStreamURL(ctx context.Context, tokenID string) error {
	if s.ctl == nil {
		return errNoServer("RevokeStreamURL")
	}
	if tokenID == "" || !validID(tokenID) {
		return &desktop.Error{Code: desktop.CodeInvalid, Field: "token_id", Index: -1,
			Message: fmt.Sprintf("token id %q is not the TokenID of a StreamURL", tokenID)}
	}
	path, err := sandboxPath(s.ctl.id, "/stream/"+tokenID)
	if err != nil {
		return err
	}
	return s.ctl.srv.t.call(ctx, http.MethodDelete, path, nil, nil, nil)
}

// RevokeStreamURLs makes every live-view URL of the sandbox issued so far
// stop working and closes their live views.
func (s *Sandbox) RevokeStreamURLs(ctx context.Context) error {
	if s.ctl == nil {
		return errNoServer("RevokeStreamURLs")
	}
	path, err := sandboxPath(s.ctl.id, "/stream")
	if err != nil {
		return err
	}
	return s.ctl.srv.t.call(ctx, http.MethodDelete, path, nil, nil, nil)
}
