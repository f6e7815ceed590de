package apitype

import "time"

// Resize modes of the live view (StreamURLRequest.Resize). The desktop
// keeps the resolution it was created with: a viewer scales it or not.
const (
	ResizeOff   = "off"   // the desktop at its own size, with scroll bars
	ResizeScale = "scale" // scaled to fit the browser window (default)
)

// StreamURLRequest is the body of POST /v1/sandboxes/{id}/stream, which
// makes a signed URL of the sandbox's live view.
type StreamURLRequest struct {
	// ViewOnly drops the viewer's input (the server enforces it).
	ViewOnly bool `json:"view_only"`
	// TTLS is the URL's life in seconds; 0 is the server's default (1 hour).
	TTLS int `json:"ttl_s,omitempty"`
	// AutoConnect connects when the page opens; nil is true.
	AutoConnect *bool `json:"auto_connect,omitempty"`
	// Resize is ResizeOff or ResizeScale; "" is ResizeScale.
	Resize string `json:"resize,omitempty"`
	// WindowID, when not 0, shows only this X window.
	WindowID uint32 `json:"window_id,omitempty"`
}

// StreamURL is the answer of POST /v1/sandboxes/{id}/stream.
type StreamURL struct {
	// URL opens the live view in a browser.
	URL string `json:"url"`
	// WebSocketURL speaks RFB over WebSocket, for other VNC clients.
	WebSocketURL string `json:"websocket_url"`
	// Token is the signed token in both URLs.
	Token Token `json:"token"`
	// TokenID names the URL for DELETE /v1/sandboxes/{id}/stream/{token_id}.
	TokenID   string    `json:"token_id"`
	SandboxID string    `json:"sandbox_id"`
	ViewOnly  bool      `json:"view_only"`
	ExpiresAt time.Time `json:"expires_at"`
}
