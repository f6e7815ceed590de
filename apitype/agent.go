package apitype

// LaunchRequest is the body of POST /v1/launch on the agent: an
// application by the name of its .desktop file, optionally with one file
// or URL to open, or a program's argv run without a shell. The answer is
// the desktop.ActionResult of the launch.
type LaunchRequest struct {
	App     string   `json:"app,omitempty"`
	Command []string `json:"command,omitempty"`
	URI     string   `json:"uri,omitempty"`
}

// OpenRequest is the body of POST /v1/open on the agent: a file or URL to
// open with its default application.
type OpenRequest struct {
	Target string `json:"target"`
}

// Clipboard is the answer of GET /v1/clipboard and the body of
// PUT /v1/clipboard on the agent. Text is required in a request.
type Clipboard struct {
	Text *string `json:"text"`
}

// VNCRequest is the optional body of POST /v1/stream on the agent, which
// starts the VNC server of the live view.
type VNCRequest struct {
	// Window, when not 0, streams only this X window.
	Window uint32 `json:"window,omitempty"`
}

// VNCStream is the answer of POST /v1/stream on the agent.
type VNCStream struct {
	// Address is where the VNC server listens, as seen from the agent
	// ("127.0.0.1:5900").
	Address string `json:"address"`
}
